"""The project's error type: the CLI turns it into a one-line message and exit code 1."""
from __future__ import annotations

import errno


class RetrError(Exception):
    """A user-facing error (bad input, bad path, wrong model for an index). Never a bug."""


class CatalogMissing(RetrError):
    """A catalog opened to be read does not exist: no database file, or no retr ``images`` table in it."""

    def __init__(self, url: str, what: str):
        super().__init__(f"the catalog {url} {what}")
        self.url = url
        self.what = what


def write_hint(error: BaseException | str) -> str:
    """What to do about a failed write: a full disk or a read-only place say so; else nothing."""
    text = str(error)
    code = getattr(error, "errno", None)
    if code == errno.ENOSPC or "No space left" in text or "disk is full" in text:
        return "; the disk is full: free some space and run the command again (finished work is kept)"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text or "read-only" in text.lower():
        return "; the location is read-only: make it writable, or copy the index to a writable folder"
    return ""
