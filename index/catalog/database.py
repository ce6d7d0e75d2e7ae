"""The catalog: image rows (and their vectors) in any SQLAlchemy database; SQLite by default."""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

import numpy as np
from sqlalchemy import create_engine, delete, event, func, insert, inspect, or_, select, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from index.errors import CatalogMissing, RetrError, write_hint
from index.lock import PgLock
from index.catalog.schema import STATUS_ERROR, Base, Image

CATALOG_FILE = "catalog.sqlite"
# read: an existing catalog, no schema change; write: an existing catalog, missing tables and columns
# added; create: made when absent (only `retr index build` creates a catalog)
Mode = Literal["read", "write", "create"]
MODES = ("read", "write", "create")
_CHUNK = 500  # ids per IN (...) clause, below every backend's parameter limit


@dataclasses.dataclass(frozen=True)
class ImageRow:
    """A catalog image without its vector."""

    id: int
    path: str
    sha256: str | None
    bytes: int | None
    width: int | None
    height: int | None
    mtime: float | None
    status: str
    error: str | None
    has_vector: bool


def encode_vector(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def decode_vectors(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    out = np.frombuffer(b"".join(blobs), dtype=np.float32)
    if out.size != len(blobs) * dim:
        raise RetrError(f"catalog vectors do not have dimension {dim}; rebuild the index")
    return out.reshape(len(blobs), dim)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def chunks(seq: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    """``seq`` in slices of ``size``: ids for one IN (...) clause each."""
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


_ROW_COLUMNS = (Image.id, Image.path, Image.sha256, Image.bytes, Image.width, Image.height, Image.mtime,
                Image.status, Image.error, Image.vector.is_not(None))


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None: another backend, or an in-memory database)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _db_error(exc: SQLAlchemyError, what: str, url: str) -> RetrError:
    """A database error as one line: what failed, the driver's first line, and what to do."""
    first = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    db_file = _sqlite_file(url)
    return RetrError(f"{what}: {first}{write_hint(first, db_file.parent if db_file else None)}")


class Catalog:
    """One catalog database. Every write happens in a transaction.

    ``mode`` (see Mode) says whether the database may be created or its schema changed. ``lock`` takes
    the PostgreSQL writer lock (index.lock) before any schema change; SQLite catalogs are locked by the
    index folder's lock file (IndexStore).
    """

    def __init__(self, url: str, *, mode: Mode = "create", lock: bool = False, command: str | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown catalog mode {mode!r}; use one of {', '.join(MODES)}")
        self.url = url
        self.mode = mode
        self._lock: PgLock | None = None
        db_file = _sqlite_file(url)
        if mode != "create" and db_file is not None and not db_file.is_file():
            raise CatalogMissing(url, "does not exist")  # connecting would create an empty database file
        try:
            self.engine: Engine = create_engine(url, future=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise RetrError(f"cannot open catalog database {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            if lock and mode != "read" and self.engine.dialect.name == "postgresql":
                self._lock = PgLock(self.engine, command)
                self._lock.acquire()  # before create_all: two new builds would both create the tables
            if mode != "create" and not inspect(self.engine).has_table(Image.__tablename__):
                raise CatalogMissing(self.safe_url, "holds no retr catalog (no images table)")
            if mode != "read":
                Base.metadata.create_all(self.engine)
                self._add_missing_columns()
        except SQLAlchemyError as exc:
            self.close()
            raise _db_error(exc, f"cannot open catalog database {self.safe_url}", url) from exc
        except BaseException:
            self.close()
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _add_missing_columns(self) -> None:
        """Columns added to the schema after a catalog was made (``images.model``) are added to it."""
        have = {c["name"] for c in inspect(self.engine).get_columns(Image.__tablename__)}
        if "model" not in have:
            with self.engine.begin() as conn:
                conn.execute(text("ALTER TABLE images ADD COLUMN model VARCHAR(64)"))

    @classmethod
    def for_index(cls, index_dir: str | Path, url: str | None = None, *, mode: Mode = "create",
                  lock: bool = False, command: str | None = None) -> "Catalog":
        """The catalog of an index directory: ``url`` if given, else ``catalog.sqlite`` inside it."""
        if url is None:
            index_dir = Path(index_dir)
            if mode == "create":
                try:
                    index_dir.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise RetrError(f"cannot create the index folder {index_dir}: {exc.strerror or exc}") from exc
            url = f"sqlite:///{(index_dir / CATALOG_FILE).resolve()}"
        return cls(url, mode=mode, lock=lock, command=command)

    def check_writable(self) -> None:
        """Refuse, before any work, a SQLite catalog whose file (or folder) cannot be written."""
        db_file = _sqlite_file(self.url)
        if db_file is None:
            return
        for path in (db_file, db_file.with_name(db_file.name + "-wal"), db_file.with_name(db_file.name + "-shm"),
                     db_file.parent):
            if path.exists() and not os.access(path, os.W_OK):
                raise RetrError(f"the catalog {self.safe_url} cannot be written ({path} is read-only); make it "
                                "writable, or copy the index to a writable folder")

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any exception.

        A database that cannot be written (a full disk, a read-only file) or read (a damaged file) is a
        one-line RetrError.
        """
        try:
            with self._sessions() as session, session.begin():
                yield session
        except DatabaseError as exc:
            raise _db_error(exc, f"catalog {self.safe_url}", self.url) from exc

    @contextlib.contextmanager
    def writer_lock(self, command: str | None = None) -> Iterator[None]:
        """Hold the PostgreSQL writer lock for a block, unless this catalog holds it already."""
        if self._lock is not None or self.engine.dialect.name != "postgresql":
            yield
            return
        lock = PgLock(self.engine, command)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def close(self) -> None:
        if self._lock is not None:
            try:
                self._lock.release()
            finally:
                self._lock = None
        if hasattr(self, "engine"):
            self.engine.dispose()

    # -- image rows ---------------------------------------------------------------------------------

    def image_rows(self, paths: Iterable[str] | None = None) -> dict[str, ImageRow]:
        """Rows by path: all of them, or only those of ``paths``."""
        with self.session() as s:
            if paths is None:
                result = s.execute(select(*_ROW_COLUMNS)).all()
            else:
                result = []
                for chunk in chunks(list(paths)):
                    result += s.execute(select(*_ROW_COLUMNS).where(Image.path.in_(chunk))).all()
        return {r[1]: ImageRow(*r[:9], has_vector=bool(r[9])) for r in result}

    def rows_by_id(self, ids: Iterable[int]) -> dict[int, ImageRow]:
        ids = sorted({int(i) for i in ids if int(i) >= 0})
        out: dict[int, ImageRow] = {}
        with self.session() as s:
            for chunk in chunks(ids):
                for r in s.execute(select(*_ROW_COLUMNS).where(Image.id.in_(chunk))):
                    out[r[0]] = ImageRow(*r[:9], has_vector=bool(r[9]))
        return out

    def paths_by_id(self, ids: Iterable[int]) -> dict[int, str]:
        """The path of each id: the lean lookup on the query path."""
        ids = sorted({int(i) for i in ids if int(i) >= 0})
        out: dict[int, str] = {}
        with self.session() as s:
            for chunk in chunks(ids):
                out.update(s.execute(select(Image.id, Image.path).where(Image.id.in_(chunk))).all())
        return out

    def write_images(self, records: Sequence[dict]) -> list[int]:
        """Insert or update rows by path in one transaction; returns their ids in order.

        A record holds ``path`` and any of the other columns; ``vector`` may be a numpy array.
        """
        with self.session() as s:
            existing: dict[str, int] = {}
            for chunk in chunks([r["path"] for r in records]):
                existing.update(s.execute(select(Image.path, Image.id).where(Image.path.in_(chunk))).all())
            new: dict[str, dict] = {}  # path -> the values of a new row (the last record of a path wins)
            for rec in records:
                values = dict(rec)
                if isinstance(values.get("vector"), np.ndarray):
                    values["vector"] = encode_vector(values["vector"])
                image_id = existing.get(values["path"])
                if image_id is None:
                    new[values["path"]] = values
                else:
                    s.execute(update(Image).where(Image.id == image_id).values(**values))
            groups: dict[tuple[str, ...], list[dict]] = {}  # one multi-row INSERT per set of columns
            for values in new.values():
                groups.setdefault(tuple(sorted(values)), []).append(values)
            for rows in groups.values():
                got = s.execute(insert(Image).returning(Image.id, sort_by_parameter_order=True), rows).scalars()
                existing.update(zip((r["path"] for r in rows), got))
            ids = [existing[r["path"]] for r in records]
        return ids

    def delete_images(self, ids: Iterable[int]) -> int:
        ids = sorted({int(i) for i in ids})
        with self.session() as s:
            for chunk in chunks(ids):
                s.execute(delete(Image).where(Image.id.in_(chunk)))
        return len(ids)

    def forget_vectors_not_of(self, model: str) -> int:
        """Forget vectors made by another model, or by an unknown one (NULL): they are embedded again."""
        stale = or_(Image.model.is_(None), Image.model != model)
        with self.session() as s:
            n = s.scalar(select(func.count()).where(Image.vector.is_not(None), stale))
            if n:
                s.execute(update(Image).where(Image.vector.is_not(None), stale)
                          .values(vector=None, status="pending"))
        return int(n or 0)

    def has_vectors(self) -> bool:
        with self.session() as s:
            return s.scalar(select(Image.id).where(Image.vector.is_not(None)).limit(1)) is not None

    # -- vectors ------------------------------------------------------------------------------------

    def vector_ids(self, *, table: type = Image) -> np.ndarray:
        """Ids of the rows of ``table`` (images, or regions) that hold a vector, ascending."""
        with self.session() as s:
            ids = s.scalars(select(table.id).where(table.vector.is_not(None)).order_by(table.id)).all()
        return np.asarray(ids, dtype=np.int64)

    def iter_vectors(self, dim: int, batch: int = 20000, *, table: type = Image, first: int | None = None,
                     last: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) of every row of ``table`` (images, or regions) that holds a vector,
        in id order, ``batch`` at a time; only ids from ``first`` to ``last`` (both included) when given."""
        stop = last
        last = -1 if first is None else int(first) - 1
        while True:
            where = [table.vector.is_not(None), table.id > last]
            if stop is not None:
                where.append(table.id <= int(stop))
            with self.session() as s:
                rows = s.execute(select(table.id, table.vector).where(*where).order_by(table.id).limit(batch)).all()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, decode_vectors([r[1] for r in rows], dim)
            last = int(ids[-1])

    def vectors_for(self, ids: Sequence[int], dim: int, *, table: type = Image) -> np.ndarray:
        """The stored vectors of ``ids`` (rows of ``table``), in that order (a missing vector is an error)."""
        found: dict[int, bytes] = {}
        with self.session() as s:
            for chunk in chunks(sorted({int(i) for i in ids})):
                found.update(s.execute(select(table.id, table.vector)
                                       .where(table.id.in_(chunk), table.vector.is_not(None))).all())
        missing = [int(i) for i in ids if int(i) not in found]
        if missing:
            raise RetrError(f"{len(missing)} image(s) have no stored vector (e.g. id {missing[0]})")
        return decode_vectors([found[int(i)] for i in ids], dim)

    # -- summaries ----------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            by_status = dict(s.execute(select(Image.status, func.count()).group_by(Image.status)).all())
            with_vector = s.scalar(select(func.count()).where(Image.vector.is_not(None)))
        return {"images": int(with_vector or 0), "errors": int(by_status.get(STATUS_ERROR, 0)),
                "rows": int(sum(by_status.values()))}

    def errors(self) -> list[tuple[str, str]]:
        with self.session() as s:
            return list(s.execute(select(Image.path, Image.error).where(Image.status == STATUS_ERROR)
                                  .order_by(Image.path)).all())
