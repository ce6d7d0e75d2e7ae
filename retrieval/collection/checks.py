"""User errors of a query or build that the index directory alone decides, checked before any model loads
(so they cost no torch start-up): another model than the index's, region search without regions."""
from __future__ import annotations

from pathlib import Path

from index.directory import IndexStore, check_model
from index.errors import RetrError
from index.manifest import Manifest
from index.regions import RegionIndex
from retrieval.models import is_checkpoint


def refuse_other_model(manifest: Manifest | None, index_dir: str | Path, model: str | None) -> None:
    """Refuse a named ``model`` that is not the one the index (its ``manifest``) was built with."""
    if model and manifest is not None:
        asked = str(Path(model).resolve()) if is_checkpoint(model) else model
        if asked != manifest.model["spec"]:
            check_model(manifest, Path(index_dir), {"spec": asked, "dim": None, "weights": None})


def searched_regions(store: IndexStore, index_dir: object) -> RegionIndex:
    """The index's region index; a one-line error when it has no regions."""
    regions = RegionIndex(store)
    if regions.state is None:
        raise RetrError(f"the index at {index_dir} has no regions: build it with "
                        "`retr index build PATH --regions NAME`")
    return regions
