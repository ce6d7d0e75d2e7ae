"""Build (or update) the region index of an index directory: incremental by image."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.errors import RetrError
from index.catalog.regions import clear_regions, pending_images, replace_regions
from index.regions import RegionIndex
from index.directory import IndexStore
from retrieval.embed import Embedder
from retrieval.models.identity import ModelRef
from retrieval.progress import stage_progress
from retrieval.regions.embed import embed_regions
from retrieval.regions.settings import RegionOptions, RegionSettings
from retrieval.regions.sources.base import RegionSource

if TYPE_CHECKING:
    from retrieval.models.load import LoadedModel


@dataclasses.dataclass
class RegionReport:
    source: str
    images: int = 0  # images whose regions were (re)computed now
    regions: int = 0  # regions stored for them
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    total: int = 0  # regions in regions.faiss
    rebuilt: bool = False  # the source, settings or model changed: every image's regions were redone
    factory: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "images": self.images, "regions": self.regions, "total": self.total,
                "rebuilt": self.rebuilt, "failed": [{"path": p, "error": e} for p, e in self.failed]}


def _wanted_state(source: RegionSource, options: RegionOptions, embedder: Embedder) -> dict[str, Any]:
    return {"spec": options.spec, "source": source.key(), "settings": options.settings.to_json(),
            "model": embedder.identity,
            "detector_weights": str(Path(options.detector_weights).resolve()) if options.detector_weights else None}


def build_regions(store: IndexStore, model: Embedder | LoadedModel | ModelRef, options: RegionOptions, *,
                  progress: bool = False, source: RegionSource | None = None) -> RegionReport:
    """Compute regions for every embedded image that lacks them (all of them when the source changed);
    ``model`` embeds the crops with its inference settings (an Embedder), or with the defaults."""
    start = time.perf_counter()
    if store.manifest is None:
        raise RetrError(f"the index at {store.dir} has no images yet: build it before its regions")
    embedder = model if isinstance(model, Embedder) else Embedder(model, lazy=True)
    store.check_model(embedder.identity)
    source = source or options.source(embedder.settings.device)
    regions = RegionIndex(store)
    state, wanted = regions.state, _wanted_state(source, options, embedder)
    report = RegionReport(source=source.key())
    same = state is not None and all(state.get(k) == wanted[k] for k in ("source", "settings", "model"))
    damage = regions.file_problem() if same and state.get("checksum") else None
    if not same:
        report.rebuilt = state is not None
        clear_regions(store.catalog)
        keep = {k: state[k] for k in ("index_type",) if state and k in state}
        # the new state is recorded first, so an interrupted build resumes with the new source
        regions.write_state({**keep, **wanted, "ids_digest": None})
    todo = pending_images(store.catalog, source.key())
    if todo:
        for done, failed in embed_regions(embedder, source, options.settings, todo, progress=progress):
            replace_regions(store.catalog, source.key(), done)
            report.images += len(done)
            report.regions += sum(len(d.regions) for d in done)
            report.failed += [(f.path, f.error) for f in failed]
    index_type = options.index_type or (regions.state or {}).get("index_type") or store.manifest.index_type
    if todo or not regions.consistent() or index_type != regions.state.get("index_type") \
            or not regions.state.get("checksum"):
        regions.rebuild(index_type, progress=stage_progress(progress))
    if damage is not None:
        store.note(f"{damage}: rebuilt it from the catalog's {regions.state.get('vectors', 0)} region vectors")
    report.total = int(regions.state.get("vectors", 0))
    report.factory = str(regions.state.get("factory", ""))
    report.seconds = time.perf_counter() - start
    return report


def region_options_for(store: IndexStore, options: RegionOptions | None) -> RegionOptions | None:
    """The regions a build keeps up to date: those named, else the ones the index already has."""
    if options is not None:
        return options
    state = RegionIndex(store).state
    if state is None:
        return None
    return RegionOptions(spec=state["spec"], settings=RegionSettings(**state["settings"]),
                         detector_weights=state.get("detector_weights"), index_type=state.get("index_type"))
