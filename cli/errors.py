"""The CLI's error boundary: a user error is one line on stderr and exit code 1, never a traceback."""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import typer

from index.errors import RetrError


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


class _Warnings(logging.Handler):
    """The library's warnings (a damaged faiss file rebuilt, a repair left for later) as stderr lines."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(f"warning: {record.getMessage()}", err=True)


def _say_warnings() -> None:
    for name in ("index", "retrieval"):
        logger = logging.getLogger(name)
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
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("interrupted; what was finished is kept and the next run resumes", 130) from None
