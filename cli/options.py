"""Options shared by every command, defined once, and the error boundary of the CLI."""
from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Iterator

import typer

from index.errors import RetrError

# Plain (click) help for every command: it wraps long option names and choice lists where rich's narrow
# columns cut them with "...", uses up to 120 columns of a wide terminal, and needs no rich import.
# Sub-apps inherit both from the `retr` app.
HELP_SETTINGS: dict[str, Any] = {"rich_markup_mode": None, "context_settings": {"max_content_width": 120}}

IndexDir = Annotated[Path, typer.Option("--index", "-i", help="Index directory.", envvar="RETR_INDEX")]
DEFAULT_INDEX = Path("retr-index")
DbUrl = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of the catalog "
                                           "(default: catalog.sqlite inside the index directory).",
                                           envvar="RETR_DB")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
def _device_name(value: str) -> str:
    """A misspelt --device is a usage error before torch is imported, even when nothing needs a device."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise typer.BadParameter(f"{value!r} is not a device: use auto, cpu, cuda or cuda:N")
    return value


Device = Annotated[str, typer.Option("--device", callback=_device_name,
                                     help="auto (CUDA when present), cpu, cuda or cuda:N.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
Workers = Annotated[int | None, typer.Option("--workers", min=0,
                                             help="DataLoader worker processes (default: cores - 1).")]
ModelSpec = Annotated[str | None, typer.Option("--model", "-m", help="timm model name or retr checkpoint "
                                               "directory (default: tf_efficientnet_lite0, offline weights).")]
WeightsFile = Annotated[Path | None, typer.Option("--weights", help="Weights file (safetensors or state "
                                                  "dict) for a timm model.")]
RandomWeights = Annotated[bool, typer.Option("--random-weights", help="Start from random weights "
                                             "(never chosen silently).")]


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a person watching: not with --quiet, not when stderr is not a TTY."""
    return not quiet and sys.stderr.isatty()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


class _Warnings(logging.Handler):
    """The library's warnings (a damaged faiss file rebuilt, a repair left for later) as stderr lines."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"warning: {record.getMessage()}", err=True)


def _say_warnings() -> None:
    logger = logging.getLogger("index")
    if not any(isinstance(h, _Warnings) for h in logger.handlers):
        logger.addHandler(_Warnings(logging.WARNING))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a RetrError (and Ctrl-C) into a one-line message and exit code 1, never a traceback;
    say the library's warnings on stderr."""
    _say_warnings()
    try:
        yield
    except RetrError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted; what was finished is kept and the next run resumes", 130) from None
