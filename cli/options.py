"""Options shared by several commands, each defined once as an `Annotated` alias."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_INDEX = Path("retr-index")


def index_option(help: str, *, envvar: bool = True) -> Any:
    """`--index/-i DIR`, with the help that says what the command does with the index."""
    return typer.Option("--index", "-i", help=help, envvar="RETR_INDEX" if envvar else None)


IndexDir = Annotated[Path, index_option("Index directory.")]
DbUrl = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of the catalog "
                                           "(default: catalog.sqlite inside the index directory).",
                                           envvar="RETR_DB")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
HtmlOut = Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML page with thumbnails.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Neighbours = Annotated[int, typer.Option("-k", "--k", min=1, help="Neighbours per query.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed.")]


def _device_name(value: str) -> str:
    """A misspelt --device is a usage error before torch is imported, even when nothing needs a device."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise typer.BadParameter(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N")
    return value


Device = Annotated[str, typer.Option("--device", callback=_device_name,
                                     help="auto (CUDA when present), cpu, cuda or cuda:N.")]


def _runtime_name(value: str) -> str:
    """A misspelt --runtime is a usage error before torch or a runtime library is imported."""
    from retrieval.runtimes import runtime_names
    if value not in runtime_names():
        raise typer.BadParameter(f"{value!r} is not a runtime: use {', '.join(runtime_names())}")
    return value


def _precision_name(value: str) -> str:
    from retrieval.runtimes import PRECISIONS
    if value not in PRECISIONS:
        raise typer.BadParameter(f"{value!r} is not a precision: use {', '.join(PRECISIONS)}")
    return value


Runtime = Annotated[str, typer.Option("--runtime", callback=_runtime_name, envvar="RETR_RUNTIME",
                                      help="Inference runtime: auto (torch on CUDA; on a CPU the fastest exact "
                                      "runtime installed: openvino, onnx, else torch), torch, openvino or onnx.")]
Precision = Annotated[str, typer.Option("--precision", callback=_precision_name,
                                        help="f32 (exact: checked against torch) or bf16 (openvino only; "
                                        "faster, vectors move: see the docs, CPU runtimes).")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
Workers = Annotated[int | None, typer.Option("--workers", min=0,
                                             help="DataLoader worker processes (default: cores - 1, at most 8; "
                                                  "when embedding, at least 2 on 2 or more cores).")]
ModelSpec = Annotated[str | None, typer.Option("--model", "-m", help="timm model name or retr checkpoint "
                                               "directory (default: tf_efficientnet_lite0, offline weights).")]
WeightsFile = Annotated[Path | None, typer.Option("--weights", help="Weights file (safetensors or state "
                                                  "dict) for a timm model.")]
RandomWeights = Annotated[bool, typer.Option("--random-weights", help="Start from random weights "
                                             "(never chosen silently).")]


def inference_settings(device: str = "auto", runtime: str = "auto", precision: str = "f32", batch_size: int = 32,
                       workers: int | None = None) -> Any:
    """The inference options of a command as the one value the library takes (retrieval.runtimes.settings)."""
    from retrieval.runtimes.settings import InferenceSettings
    return InferenceSettings(device=device, runtime=runtime, precision=precision, batch_size=batch_size,
                             workers=workers)


def prefetch_model(index: Path, model: str | None, weights: str | None, settings: Any, *,
                   streams: bool = False) -> Any:
    """A block in which the model of the index at ``index`` (its checked export) opens in the background;
    nothing opens when the index cannot be read yet (opening it says why)."""
    from index.errors import RetrError
    from index.manifest import read_manifest
    from retrieval.embed import prefetching
    from retrieval.models.identity import model_name
    try:
        manifest = read_manifest(index)
    except RetrError:
        manifest = None
    name = model_name(manifest.model, model, weights) if manifest is not None else None
    return prefetching(name, settings, streams=streams)


RayAddress = Annotated[str | None, typer.Option(
    "--ray", envvar="RETR_RAY_ADDRESS", metavar="ADDRESS",
    help="Run the work on a Ray cluster: local (a Ray instance on this machine), auto (the cluster `ray start` runs "
         "here) or HOST:PORT. Every node must read the images at the same paths. Needs Ray: pip install 'ray[data]'.")]
RayActors = Annotated[int | None, typer.Option(
    "--ray-actors", min=1, help="Embedding actors with --ray (default: one per GPU of the cluster, else one per node).")]


def ray_options(address: str | None, actors: int | None) -> Any:
    """--ray and --ray-actors as the library takes them (None: no Ray); --ray-actors alone is a usage error."""
    if address is None:
        if actors is not None:
            raise typer.BadParameter("--ray-actors needs --ray ADDRESS", param_hint="'--ray-actors'")
        return None
    from retrieval.scaleout.cluster import RaySettings  # no Ray import: Ray loads when the work starts
    return RaySettings(address, actors)


def weights_path(weights: Path | None) -> str | None:
    """--weights as the library takes it; a file that is not there is a usage error before any model loads."""
    if weights is not None and not weights.is_file():
        raise typer.BadParameter(f"weights file not found: {weights}", param_hint="'--weights'")
    return str(weights) if weights else None


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a person watching: not with --quiet, not when stderr is not a TTY."""
    return not quiet and sys.stderr.isatty()
