"""The catalog: image rows (and their vectors) in any SQLAlchemy database; SQLite by default."""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import create_engine, delete, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from index.errors import RetrError
from index.schema import STATUS_ERROR, STATUS_OK, Base, Image

CATALOG_FILE = "catalog.sqlite"
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


def _chunks(seq: Sequence, size: int = _CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


_ROW_COLUMNS = (Image.id, Image.path, Image.sha256, Image.bytes, Image.width, Image.height, Image.mtime,
                Image.status, Image.error, Image.vector.is_not(None))


class Catalog:
    """One catalog database. Every write happens in a transaction."""

    def __init__(self, url: str):
        self.url = url
        try:
            self.engine: Engine = create_engine(url, future=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise RetrError(f"cannot open catalog database {url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise RetrError(f"cannot open catalog database {self.safe_url}: {exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0]}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def for_index(cls, index_dir: str | Path, url: str | None = None) -> "Catalog":
        """The catalog of an index directory: ``url`` if given, else ``catalog.sqlite`` inside it."""
        if url is None:
            index_dir = Path(index_dir)
            try:
                index_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RetrError(f"cannot create the index folder {index_dir}: {exc.strerror or exc}") from exc
            url = f"sqlite:///{(index_dir / CATALOG_FILE).resolve()}"
        return cls(url)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # -- image rows ---------------------------------------------------------------------------------

    def image_rows(self, paths: Iterable[str] | None = None) -> dict[str, ImageRow]:
        """Rows by path: all of them, or only those of ``paths``."""
        with self.session() as s:
            if paths is None:
                result = s.execute(select(*_ROW_COLUMNS)).all()
            else:
                result = []
                for chunk in _chunks(list(paths)):
                    result += s.execute(select(*_ROW_COLUMNS).where(Image.path.in_(chunk))).all()
        return {r[1]: ImageRow(*r[:9], has_vector=bool(r[9])) for r in result}

    def rows_by_id(self, ids: Iterable[int]) -> dict[int, ImageRow]:
        ids = sorted({int(i) for i in ids if int(i) >= 0})
        out: dict[int, ImageRow] = {}
        with self.session() as s:
            for chunk in _chunks(ids):
                for r in s.execute(select(*_ROW_COLUMNS).where(Image.id.in_(chunk))):
                    out[r[0]] = ImageRow(*r[:9], has_vector=bool(r[9]))
        return out

    def paths_by_id(self, ids: Iterable[int]) -> dict[int, str]:
        """The path of each id: the lean lookup on the query path."""
        ids = sorted({int(i) for i in ids if int(i) >= 0})
        out: dict[int, str] = {}
        with self.session() as s:
            for chunk in _chunks(ids):
                out.update(s.execute(select(Image.id, Image.path).where(Image.id.in_(chunk))).all())
        return out

    def write_images(self, records: Sequence[dict]) -> list[int]:
        """Insert or update rows by path in one transaction; returns their ids in order.

        A record holds ``path`` and any of the other columns; ``vector`` may be a numpy array.
        """
        ids: list[int] = []
        with self.session() as s:
            existing: dict[str, int] = {}
            for chunk in _chunks([r["path"] for r in records]):
                existing.update(s.execute(select(Image.path, Image.id).where(Image.path.in_(chunk))).all())
            for rec in records:
                values = dict(rec)
                if isinstance(values.get("vector"), np.ndarray):
                    values["vector"] = encode_vector(values["vector"])
                image_id = existing.get(values["path"])
                if image_id is None:
                    row = Image(**values)
                    s.add(row)
                    s.flush()
                    image_id = row.id
                    existing[values["path"]] = image_id
                else:
                    s.execute(update(Image).where(Image.id == image_id).values(**values))
                ids.append(image_id)
        return ids

    def touch(self, updates: Sequence[tuple[int, float, int]]) -> None:
        """Record a new mtime and size for rows whose content did not change: (id, mtime, bytes)."""
        with self.session() as s:
            for image_id, mtime, size in updates:
                s.execute(update(Image).where(Image.id == image_id).values(mtime=mtime, bytes=size))

    def delete_images(self, ids: Iterable[int]) -> int:
        ids = sorted({int(i) for i in ids})
        with self.session() as s:
            for chunk in _chunks(ids):
                s.execute(delete(Image).where(Image.id.in_(chunk)))
        return len(ids)

    def clear_vectors(self) -> None:
        """Forget every vector (the model changed): every ok row will be embedded again."""
        with self.session() as s:
            s.execute(update(Image).where(Image.status == STATUS_OK).values(vector=None, status="pending"))

    # -- vectors ------------------------------------------------------------------------------------

    def vector_ids(self) -> np.ndarray:
        """Ids of the rows that hold a vector, ascending."""
        with self.session() as s:
            ids = s.scalars(select(Image.id).where(Image.vector.is_not(None)).order_by(Image.id)).all()
        return np.asarray(ids, dtype=np.int64)

    def iter_vectors(self, dim: int, batch: int = 20000, *, table: type = Image
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) of every row of ``table`` (images, or regions) that holds a vector,
        in id order, ``batch`` at a time."""
        last = -1
        while True:
            with self.session() as s:
                rows = s.execute(select(table.id, table.vector)
                                 .where(table.vector.is_not(None), table.id > last)
                                 .order_by(table.id).limit(batch)).all()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, decode_vectors([r[1] for r in rows], dim)
            last = int(ids[-1])

    def vectors_for(self, ids: Sequence[int], dim: int) -> np.ndarray:
        """The stored vectors of ``ids``, in that order (a missing vector is an error)."""
        found: dict[int, bytes] = {}
        with self.session() as s:
            for chunk in _chunks(sorted({int(i) for i in ids})):
                found.update(s.execute(select(Image.id, Image.vector)
                                       .where(Image.id.in_(chunk), Image.vector.is_not(None))).all())
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
