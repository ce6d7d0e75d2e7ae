"""Which model an index embeds with: the one it was built with, unless the caller names another."""
from __future__ import annotations

from index.directory import IndexStore
from retrieval.collection.checks import refuse_other_model
from retrieval.models.load import DEFAULT_MODEL, LoadedModel, load_model


def index_model(store: IndexStore, model: str | None = None, weights: str | None = None,
                random_weights: bool = False) -> LoadedModel:
    """The model to embed with: the index's recorded one unless ``model`` is named (then checked against it)."""
    refuse_other_model(store.manifest, store.dir, model)  # before loading it
    recorded = store.manifest.model if store.manifest else None
    spec = model or (recorded["spec"] if recorded else DEFAULT_MODEL)
    if weights is None and model is None and recorded:
        weights = recorded.get("weights_file")
    random = random_weights or (model is None and bool(recorded)
                                and str(recorded.get("weights", "")).startswith("random"))
    loaded = load_model(spec, weights=weights, pretrained=not random)
    store.check_model(loaded.info.identity())
    return loaded
