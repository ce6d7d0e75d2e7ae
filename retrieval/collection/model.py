"""Which model an index embeds with: the one it was built with, unless the caller names another."""
from __future__ import annotations

from index.directory import IndexStore
from retrieval.collection.checks import refuse_other_model
from retrieval.models.identity import ModelRef, model_name


def index_model(store: IndexStore, model: str | None = None, weights: str | None = None,
                random_weights: bool = False) -> ModelRef:
    """The model to embed with: the index's recorded one unless ``model`` is named (then checked against it).

    Nothing is loaded here: an Embedder finds the model's checked export without torch, or loads it; the
    identity it turns out to have is checked against the index's either way.
    """
    refuse_other_model(store.manifest, store.dir, model)  # before loading it
    recorded = store.manifest.model if store.manifest else None
    return ModelRef(model_name(recorded, model, weights, random_weights), check=store.check_model)
