"""Region-level embeddings: region sources (detectors, faces, annotations, windows), crops, region index.

The names below are imported from their modules on first use (see retrieval._lazy): the package itself
imports no torch.
"""
from retrieval._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["RegionOptions", "RegionReport", "build_regions", "make_region_options"],
                    "retrieval.regions.build"),
    **dict.fromkeys(["embed_regions", "region_crops"], "retrieval.regions.embed"),
    **dict.fromkeys(["crop", "select"], "retrieval.regions.postprocess"),
    "Proposal": "retrieval.regions.proposal",
    **dict.fromkeys(["QueryPart", "RegionQueryResult", "parse_box", "query_parts"], "retrieval.regions.query"),
    "RegionSettings": "retrieval.regions.settings",
    **dict.fromkeys(["SOURCES", "known_sources", "make_source"], "retrieval.regions.sources"),
    **dict.fromkeys(["RegionSource", "SourceOptions"], "retrieval.regions.sources.base"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
