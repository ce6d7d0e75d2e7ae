"""retr's cache folder (exports of models, compiled networks, file digests) and file digests remembered there.

A model's weights and its export are identified by the sha256 of their files, which every process that
starts needs. ``cached_sha256`` reads a file once and remembers its digest under the file's path with what
the file system says of it (device, inode, size, modification and change times, in nanoseconds); a later
call that finds the same facts takes the digest without reading the file. Any write to a file moves its
change time (which, unlike the modification time, no program can set back), a replaced file has another
inode, so a changed file is always read again. A digest is remembered only for a file last changed some
seconds before it was read (as git treats "racily clean" files): a write in the same tick of the file
system's clock as the read could otherwise leave the facts unchanged.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from pathlib import Path

from index.atomic import file_sha256

SETTLED_NS = 2_000_000_000  # a file changed more recently than this before it is read is read again next time


def cache_root() -> Path:
    """$RETR_CACHE, else ~/.cache/retr."""
    return Path(os.environ.get("RETR_CACHE") or Path.home() / ".cache" / "retr")


def _facts(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _note_path(path: Path) -> Path:
    return cache_root() / "digests" / f"{hashlib.sha256(str(path).encode()).hexdigest()[:32]}.json"


def cached_sha256(path: str | os.PathLike) -> str:
    """The sha256 (hex) of a file's content, read from the file only when its facts changed since it was last
    read (OSError when the file cannot be read; a cache folder that cannot be written only costs the read)."""
    path = Path(os.path.abspath(path))
    before = os.stat(path)
    note = _note_path(path)
    try:
        known = json.loads(note.read_text())
        if known["path"] == str(path) and known["facts"] == _facts(before) and isinstance(known["sha256"], str):
            return known["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = file_sha256(path)
    after = os.stat(path)
    settled = time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns) > SETTLED_NS
    if _facts(after) == _facts(before) and settled:
        _remember(note, {"path": str(path), "facts": _facts(after), "sha256": digest})
    return digest


def _remember(note: Path, record: dict) -> None:
    """Write a digest note whole (a temporary file renamed over it); nothing when the folder is not writable."""
    tmp = note.with_name(f".{note.name}.{uuid.uuid4().hex[:8]}")
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(record))
        os.replace(tmp, note)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
