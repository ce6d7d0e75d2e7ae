"""Learning and perception: embedding models, extraction, training, dedupe, clustering, regions."""
