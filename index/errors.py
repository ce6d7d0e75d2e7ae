"""The project's error type: the CLI turns it into a one-line message and exit code 1."""
from __future__ import annotations

import errno
import os


class RetrError(Exception):
    """A user-facing error (bad input, bad path, wrong model for an index). Never a bug."""


class CatalogMissing(RetrError):
    """A catalog opened to be read does not exist: no database file, or no retr ``images`` table in it."""

    def __init__(self, url: str, what: str):
        super().__init__(f"the catalog {url} {what}")
        self.url = url
        self.what = what


def _nearly_full(folder: str | os.PathLike | None) -> bool:
    """Whether the filesystem of ``folder`` has less than 1 MiB left (SQLite reports some full-disk
    failures only as a "disk I/O error")."""
    if folder is None:
        return False
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


def write_hint(error: BaseException | str, folder: str | os.PathLike | None = None) -> str:
    """What to do about a failed write to ``folder``: a full disk or a read-only place say so; else nothing."""
    text = str(error)
    code = getattr(error, "errno", None)
    if code == errno.ENOSPC or "No space left" in text or "disk is full" in text or _nearly_full(folder):
        return "; the disk is full: free some space and run the command again (finished work is kept)"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text or "read-only" in text.lower():
        return "; the location is read-only: make it writable, or copy the index to a writable folder"
    if "malformed" in text or "not a database" in text:
        return ("; the catalog file is damaged: restore it from a backup, or start over with "
                "`retr index build PATH --index NEW_FOLDER`")
    return ""


class NotFound(RetrError):
    """A thing asked for by its id or name is not in the index (an image id, a quarantine manifest)."""


class Conflict(RetrError):
    """The request clashes with the index's state: another writer holds its lock, a file is in the way."""


class TooLarge(RetrError):
    """The input is over a size this process is set to handle (an upload, the memory to decode a picture)."""
