"""k-medoids clustering of embeddings and the `retr cluster` run over an index."""
