"""Every error `retr serve` answers with: a kind, mapped to its status in one place, and a JSON body
``{"detail": "one line"}`` whose message is capped in length and always encodable.

Library errors carry their kind as a type (``index.errors``: ``NotFound``, ``Conflict``, ``TooLarge``);
any other ``RetrError`` (an unreadable image included) is bad input. No status is chosen by matching text.
"""
from __future__ import annotations

import enum
import logging

from index.errors import Conflict, NotFound, RetrError, TooLarge

MAX_DETAIL = 300  # characters of a message; longer input is never echoed whole
log = logging.getLogger("retr.serve")


class Kind(enum.Enum):
    BAD_INPUT = 400
    UNAUTHORISED = 401
    NOT_FOUND = 404
    CONFLICT = 409
    TOO_LARGE = 413
    UNPROCESSABLE = 422  # a request that does not fit the API's schema, or a catalog file that cannot be read
    UNAVAILABLE = 503  # the index is loading, or could not be opened
    INTERNAL = 500


class ApiError(Exception):
    """An answer other than 200, of a kind."""

    def __init__(self, kind: Kind, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message

    @property
    def status(self) -> int:
        return self.kind.value


def kind_of(exc: RetrError) -> Kind:
    """The kind of a library error, by its type."""
    if isinstance(exc, NotFound):
        return Kind.NOT_FOUND
    if isinstance(exc, Conflict):
        return Kind.CONFLICT
    if isinstance(exc, TooLarge):
        return Kind.TOO_LARGE
    return Kind.BAD_INPUT


def one_line(message: object, limit: int = MAX_DETAIL) -> str:
    """``message`` as one printable line of at most ``limit`` characters, encodable as UTF-8 (a lone
    surrogate or a control character in echoed input is escaped, never raised on)."""
    text = str(message).encode("utf-8", "backslashreplace").decode("utf-8")
    lines = text.strip().splitlines()
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in (lines[0] if lines else "")) or "bad request"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(value: object, limit: int = 60) -> str:
    """A user's value as it may appear inside a message: repr'd, escaped and cut to ``limit`` characters."""
    text = one_line(repr(value), limit=10 * limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."
