"""Which model an index embeds with: the one it was built with, unless the caller names another."""
from __future__ import annotations

from pathlib import Path

from index.directory import IndexStore
from retrieval.models.load import DEFAULT_MODEL, LoadedModel, is_checkpoint, load_model


def index_model(store: IndexStore, model: str | None = None, weights: str | None = None,
                random_weights: bool = False) -> LoadedModel:
    """The model to embed with: the index's recorded one unless ``model`` is named (then checked against it)."""
    recorded = store.manifest.model if store.manifest else None
    if model and recorded:  # refuse another model before loading it
        asked = str(Path(model).resolve()) if is_checkpoint(model) else model
        if asked != recorded["spec"]:
            store.check_model({"spec": asked, "dim": None, "weights": None})
    spec = model or (recorded["spec"] if recorded else DEFAULT_MODEL)
    if weights is None and model is None and recorded:
        weights = recorded.get("weights_file")
    random = random_weights or (model is None and bool(recorded)
                                and str(recorded.get("weights", "")).startswith("random"))
    loaded = load_model(spec, weights=weights, pretrained=not random)
    store.check_model(loaded.info.identity())
    return loaded
