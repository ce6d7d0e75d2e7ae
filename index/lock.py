"""One writer at a time per index: a lock file in the index folder, and an advisory lock on PostgreSQL.

A second writer does not wait: it stops at once with a message naming the process that holds the lock,
before it loads a model or embeds anything. Readers take no lock (SQLite in WAL mode and PostgreSQL let
them read while a writer works; faiss files are replaced atomically), so they never block.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from index.errors import Conflict, RetrError, write_hint

LOCK_FILE = ".lock"


def this_process(command: str | None = None) -> str:
    """``pid N, `retr index build``` : who holds a lock, as another process reads it."""
    if command is None:
        words = [a for a in sys.argv[1:3] if not a.startswith("-")]
        command = " ".join([Path(sys.argv[0]).name or "retr", *words])
    return f"pid {os.getpid()}, `{command}`"


def _busy(holder: str, what: str) -> RetrError:
    return Conflict(f"another retr process ({holder or 'pid unknown'}) is writing {what}; wait until it "
                     "finishes (or stop it) and run the command again")


class FolderLock:
    """An exclusive ``flock`` on ``folder/.lock`` holding the holder's pid and command.

    Creating the lock file is also the check that the folder is writable, made before any work starts.
    """

    def __init__(self, folder: Path, command: str | None = None):
        self.path = Path(folder) / LOCK_FILE
        self.holder = this_process(command)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RetrError(f"cannot write the index folder {self.path.parent}: {exc.strerror or exc}"
                            f"{write_hint(exc)}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise _busy(holder, f"the index {self.path.parent}") from None
            raise RetrError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, self.holder.encode() + b"\n", 0)
        except OSError as exc:  # a full disk: better said now than after the embedding
            os.close(fd)
            raise RetrError(f"cannot write the index folder {self.path.parent}: {exc.strerror or exc}"
                            f"{write_hint(exc)}") from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def _pg_key(engine: Engine) -> int:
    """The advisory lock key of a database: 31 bits, so pg_locks shows it whole in ``objid``."""
    name = f"retr catalog {engine.url.database}"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") & 0x7FFFFFFF


class PgLock:
    """A session advisory lock (``pg_try_advisory_lock``) held on its own connection until released."""

    def __init__(self, engine: Engine, command: str | None = None):
        self.engine = engine
        self.holder = this_process(command)
        self._conn: Connection | None = None

    def acquire(self) -> None:
        key = _pg_key(self.engine)
        conn = self.engine.connect()
        try:
            # the holder's name travels as application_name, which a refused writer reads back
            conn.execute(text("SELECT set_config('application_name', :name, false)"),
                         {"name": ("retr " + self.holder)[:63]})
            got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            holder = "" if got else conn.execute(text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                {"key": key}).scalar() or ""
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            raise _busy(holder.removeprefix("retr "), f"the catalog {self.engine.url.render_as_string()}")
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
