"""File operations dedupe relies on: which file a path reaches, what it holds now, and a move that never
leaves a partial file under its final name.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from typing import BinaryIO, Callable

from index.atomic import file_sha256

Copier = Callable[[BinaryIO, BinaryIO], object]
FileId = tuple[int, int]  # (device, inode)


def file_id(path: str) -> FileId | None:
    """The (device, inode) ``path`` reaches, following symlinks; None when it reaches nothing."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def is_direct(path: str) -> bool:
    """True when no symlink lies anywhere on ``path`` (it is its own resolved path)."""
    return os.path.realpath(path) == os.path.normpath(os.path.abspath(path))


def sha256_of(path: str) -> str | None:
    """The sha256 of the regular file ``path`` reaches now; None when it is missing, unreadable or not a file."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # never open a FIFO or a device: it could block forever
            return None
        return file_sha256(path)
    except (OSError, ValueError):
        return None


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def move_file(src: str, dst: str, *, copy: Copier = shutil.copyfileobj) -> None:
    """Move ``src`` to ``dst`` (which must not exist): a rename on one filesystem; across filesystems a
    copy to a temporary name beside ``dst``, fsync, rename, then removal of ``src``, so an interrupted move
    never leaves a truncated file under ``dst``."""
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "already exists", dst)
    try:
        os.rename(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    if os.path.islink(src):
        raise OSError(errno.EXDEV, "will not copy a symbolic link across filesystems", src)
    folder = os.path.dirname(dst) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dst)[:100]}.", suffix=".partial", dir=folder)
    try:
        with open(src, "rb") as fsrc, os.fdopen(fd, "wb") as fdst:
            copy(fsrc, fdst)
            fdst.flush()
            os.fsync(fdst.fileno())
        shutil.copystat(src, tmp)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "already exists", dst)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)
    os.remove(src)
