"""Region-level embeddings: region sources (detectors, faces, annotations, windows), crops, region index."""
from retrieval.regions.build import RegionOptions, RegionReport, build_regions, make_region_options
from retrieval.regions.extract import embed_regions, region_crops
from retrieval.regions.postprocess import crop, select
from retrieval.regions.proposal import Proposal
from retrieval.regions.search import RegionQueryResult, parse_box, query_regions
from retrieval.regions.settings import RegionSettings
from retrieval.regions.source import (SOURCES, RegionSource, SourceOptions, known_sources, make_source,
                                      register_source)

__all__ = ["Proposal", "RegionOptions", "RegionQueryResult", "RegionReport", "RegionSettings", "RegionSource",
           "SOURCES", "SourceOptions", "build_regions", "crop", "embed_regions", "known_sources", "make_source",
           "make_region_options", "parse_box", "query_regions", "region_crops", "register_source", "select"]
