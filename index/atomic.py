"""Atomic file writes: write a temporary file beside the target, fsync, rename, fsync the folder."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from index.errors import RetrError, write_hint


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise RetrError(f"cannot write {target}: {exc.strerror or exc}{write_hint(exc)}") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; a report should read like any file
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, target)
        except OSError as exc:  # a full disk or a folder turned read-only: the old file stays
            raise RetrError(f"cannot write {target}: {exc.strerror or exc}{write_hint(exc)}") from exc
        fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 (hex) of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Replace ``target`` with ``text`` (UTF-8) atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
