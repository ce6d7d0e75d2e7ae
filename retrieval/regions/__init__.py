"""Region-level embeddings: region sources (detectors, faces, annotations, windows), crops, region index.

The names below are imported from their modules on first use (see retrieval._lazy): the package itself
imports no torch.
"""
from retrieval._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["RegionReport", "build_regions"], "retrieval.regions.build"),
    **dict.fromkeys(["embed_regions", "region_crops"], "retrieval.regions.embed"),
    **dict.fromkeys(["crop", "select"], "retrieval.regions.postprocess"),
    **dict.fromkeys(["Proposal", "check_region_query", "parse_box"], "retrieval.regions.proposal"),
    **dict.fromkeys(["QueryPart", "RegionQueryResult", "query_parts"], "retrieval.regions.query"),
    **dict.fromkeys(["RegionOptions", "RegionSettings", "make_region_options"], "retrieval.regions.settings"),
    **dict.fromkeys(["SOURCES", "known_sources", "make_source"], "retrieval.regions.sources"),
    **dict.fromkeys(["RegionSource", "SourceOptions"], "retrieval.regions.sources.base"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
