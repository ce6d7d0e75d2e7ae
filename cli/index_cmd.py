"""`retr index build` and `retr index info`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import (DEFAULT_INDEX, BatchSize, DbUrl, Device, IndexDir, JsonOut, ModelSpec, Quiet,
                        RandomWeights, WeightsFile, Workers, print_json, show_progress, user_errors)

index_app = typer.Typer(help="Build and inspect an index directory.", no_args_is_help=True)

IndexType = Annotated[str | None, typer.Option(
    "--index-type", help="auto (by collection size and memory), flat (exact), ivf, hnsw, pq, or any faiss "
                         "factory string. Default: the index's current type, auto for a new index.")]

# region index options (issue 6)
Regions = Annotated[str | None, typer.Option(
    "--regions", help="Also index regions: grid, windows, mtcnn (faces), coco:FILE, fasterrcnn, retinanet, "
                      "maskrcnn. Default: the index's region source, if it has one.")]
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
          json_out: JsonOut = False, quiet: Quiet = False, regions: Regions = None,
          detector_weights: DetectorWeights = None, region_score: RegionScore = None, region_nms: RegionNms = None,
          max_regions: MaxRegions = None, min_region_size: MinRegionSize = None,
          region_padding: RegionPadding = None, blank_background: BlankBackground = None) -> None:
    """Index every image under PATHS (recursively). Incremental: only new or changed files are embedded,
    deleted files are dropped, bad files are recorded and listed."""
    from retrieval.images.decode import shown
    from retrieval.collection.build import BuildOptions, build_index
    from retrieval.regions.build import make_region_options
    with user_errors():
        region_opts = make_region_options(regions, score=region_score, nms=region_nms, max_regions=max_regions,
                                          min_size=min_region_size, padding=region_padding,
                                          blank_background=blank_background,
                                          detector_weights=str(detector_weights) if detector_weights else None)
        opts = BuildOptions(model=model, weights=str(weights) if weights else None, random_weights=random_weights,
                            index_type=index_type, db_url=db, batch_size=batch_size, workers=workers,
                            device=device, progress=show_progress(quiet), regions=region_opts)
        report = build_index([str(p) for p in paths], index, opts)
    if json_out:
        print_json(report.to_json())
        return
    typer.echo(f"added {report.added}, updated {report.updated}, removed {report.removed}, "
               f"unchanged {report.unchanged}; {report.total} vectors ({report.factory}) in "
               f"{index} [{report.seconds:.1f}s]")
    if report.regions is not None:
        r = report.regions
        typer.echo(f"regions ({r.source}): {r.regions} from {r.images} image(s){' (rebuilt)' if r.rebuilt else ''}; "
                   f"{r.total} region vectors ({r.factory})")
        for path, error in r.failed:
            typer.echo(f"  region error {path}: {error}")
    if report.skipped:
        typer.echo(f"skipped {len(report.skipped)} file(s):")
        for path, error in report.skipped:
            typer.echo(f"  {shown(path)}: {shown(error)}")  # a non-UTF-8 or newline name never breaks the output


@index_app.command("info")
def info(index: IndexDir = DEFAULT_INDEX, db: DbUrl = None, json_out: JsonOut = False) -> None:
    """Counts, model, dimension, index type and size on disk. Counts are images embedded, vectors
    and errors."""
    from retrieval.collection.info import index_info  # reads the index directory; no torch
    with user_errors():
        data = index_info(index, db)
    if json_out:
        print_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key:12} {_readable(key, value)}")


def _readable(key: str, value: Any) -> str:
    """One line for the table: nested records (search parameters, latest clustering, regions) summarised."""
    if value is None:
        return "none"
    if key == "search" and not value:
        return "none (exact)"
    if key == "cluster_run":
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(value["created"]))
        sil = value.get("silhouette")
        sampled = " (sampled)" if value.get("sampled") else ""
        return (f"k={value['k']} {value['method']} over {value['n']} images{sampled}, loss {value['loss']:.4g}"
                + (f", silhouette {sil:.3f}" if sil is not None else "") + f" ({when})")
    if key == "regions":
        search = ", ".join(f"{k}={v}" for k, v in (value.get("search") or {}).items())
        return (f"{value.get('spec')}: {value.get('vectors')} region vectors from {value.get('images')} image(s), "
                f"{value.get('factory')}" + (f" ({search})" if search else ""))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
