"""`retr index build` and `retr index info`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.errors import user_errors
from cli.options import (DEFAULT_INDEX, BatchSize, DbUrl, Device, IndexDir, JsonOut, ModelSpec, Precision, Quiet,
                         RandomWeights, RayActors, RayAddress, Runtime, WeightsFile, Workers, inference_settings,
                         ray_options, show_progress,
                         weights_path)
from retrieval.regions.sources import SOURCES

index_app = typer.Typer(help="Build and inspect an index directory.", no_args_is_help=True)

IndexType = Annotated[str | None, typer.Option(
    "--index-type", help="auto (by collection size and memory), flat (exact), ivf, hnsw, pq, or any faiss "
                         "factory string. Default: the index's current type, auto for a new index.")]

# region index options
Regions = Annotated[str | None, typer.Option(
    "--regions", help=f"Also index regions: {', '.join(SOURCES.names())} (NAME:ARG, e.g. coco:FILE, "
                      "grid:1,2). Default: the index's region source, if it has one.")]
DetectorWeights = Annotated[Path | None, typer.Option("--detector-weights", help="Weights file for the "
                                                      "torchvision detectors (else torchvision's download).")]
RegionScore = Annotated[float | None, typer.Option("--region-score", help="Drop regions scored below this (0.5).")]
RegionNms = Annotated[float | None, typer.Option("--region-nms", help="NMS IoU per label (0.5); 0 = off.")]
MaxRegions = Annotated[int | None, typer.Option("--max-regions", min=1, help="Regions per image, best first.")]
MinRegionSize = Annotated[float | None, typer.Option("--min-region-size", help="Smallest box side in pixels (16).")]
RegionPadding = Annotated[float | None, typer.Option("--region-padding", help="Grow boxes by this fraction (0).")]
BlankBackground = Annotated[bool | None, typer.Option("--blank-background/--keep-background",
                                                      help="Blank pixels outside a region's mask (default on).")]


@index_app.command("build")
def build(paths: Annotated[list[Path], typer.Argument(help="Folders or image files to index.")],
          index: IndexDir = DEFAULT_INDEX, model: ModelSpec = None, weights: WeightsFile = None,
          random_weights: RandomWeights = False, index_type: IndexType = None, db: DbUrl = None,
          batch_size: BatchSize = 32, workers: Workers = None, device: Device = "auto",
          runtime: Runtime = "auto", precision: Precision = "f32",
          json_out: JsonOut = False, quiet: Quiet = False, regions: Regions = None,
          detector_weights: DetectorWeights = None, region_score: RegionScore = None, region_nms: RegionNms = None,
          max_regions: MaxRegions = None, min_region_size: MinRegionSize = None,
          region_padding: RegionPadding = None, blank_background: BlankBackground = None,
          ray: RayAddress = None, ray_actors: RayActors = None) -> None:
    """Index every image under PATHS (recursively). Incremental: only new or changed files are embedded,
    deleted files are dropped, bad files are recorded and listed. With --ray the embedding runs on a Ray
    cluster and the result is the index a local build makes."""
    from index.ann.factory import check_index_type
    from index.manifest import read_manifest
    from retrieval.collection.checks import refuse_other_model
    from retrieval.images.decode import existing
    from retrieval.regions.settings import make_region_options
    with user_errors():  # user errors are said before torch and the model load: they cost no start-up
        for path in paths:
            existing(path)
        weights_file = weights_path(weights)
        refuse_other_model(read_manifest(index), index, model)
        if index_type is not None:
            check_index_type(index_type)
        region_opts = make_region_options(regions, score=region_score, nms=region_nms, max_regions=max_regions,
                                          min_size=min_region_size, padding=region_padding,
                                          blank_background=blank_background,
                                          detector_weights=weights_path(detector_weights))
        from retrieval.collection.build import BuildOptions, build_index
        ray_settings = ray_options(ray, ray_actors)
        opts = BuildOptions(ray=ray_settings, model=model, weights=weights_file, random_weights=random_weights,
                            index_type=index_type, db_url=db,
                            inference=inference_settings(device, runtime, precision, batch_size, workers),
                            progress=show_progress(quiet or json_out), regions=region_opts)
        report = build_index([str(p) for p in paths], index, opts)
    if json_out:
        return render.print_json(report.to_json())
    typer.echo(render.build_report(report, index))


@index_app.command("info")
def info(index: IndexDir = DEFAULT_INDEX, db: DbUrl = None, json_out: JsonOut = False) -> None:
    """Counts, model, dimension, index type and size on disk. Counts are images embedded, vectors
    and errors."""
    from retrieval.collection.info import index_info  # reads the index directory; no torch
    with user_errors():
        data = index_info(index, db)
    if json_out:
        return render.print_json(data)
    typer.echo(render.index_info(data))
