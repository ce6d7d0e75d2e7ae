"""Learning and perception: embedding models, extraction, training, dedupe, clustering, regions.

``retrieval.Collection`` (retrieval.collection.api) is the public Python API; it is imported on first
use, so ``import retrieval`` stays light (no torch).
"""
from retrieval._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"Collection": "retrieval.collection.api"})
