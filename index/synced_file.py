"""A faiss file kept in step with the vectors of one catalog table: vectors.faiss (images), regions.faiss.

The manifest records how the file was built (a FileRecord), with the digest of the ids it holds, which
must agree with the catalog, and the file's sha256. A file that fails either check is never served: a
writer rebuilds it from the catalog's stored vectors (atomically); a reader, which never writes,
searches those vectors in memory and says so.
"""
from __future__ import annotations

import abc
import dataclasses
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, ContextManager, Generic, Protocol, TypeVar

import numpy as np

from index.atomic import file_sha256
from index.catalog.database import Catalog
from index.errors import RetrError
from index.manifest import ids_digest

if TYPE_CHECKING:
    import faiss

    from index.ann.ondisk import Mapper, Progress

    from index.ann.searcher import Searcher

# faiss (index.ann) is imported by the methods that build, load or search the file, so reading the
# manifest and the catalog (`retr index info`) does not pay for it


@dataclasses.dataclass(frozen=True)
class FileRecord:
    """What the manifest records of a synced faiss file."""

    index_type: str  # what was asked for: auto, flat, ... or a faiss factory string
    factory: str = ""  # the faiss factory string built
    vectors: int = 0
    ids_digest: str | None = None  # digest of the sorted ids in the file (None: not written yet)
    search: dict[str, int] = dataclasses.field(default_factory=dict)  # tuned nprobe / ef
    checksum: str | None = None  # sha256 of the file as written (None: written by an older retr)
    # an on-disk IVF index's lists (index.ann.ondisk): {"file", "bytes", "sha256", "mtime_ns"} of the .ivfdata
    # beside the file; None for an index held whole in the file
    ivfdata: dict | None = None


class Owner(Protocol):
    """The index directory a synced file lives in (IndexStore)."""

    dir: Path
    catalog: Catalog

    @property
    def writable(self) -> bool: ...

    @property
    def dim(self) -> int: ...

    def write_access(self) -> ContextManager[None]: ...

    def note(self, message: str) -> None: ...


O = TypeVar("O", bound=Owner)


class SyncedFile(abc.ABC, Generic[O]):
    """A faiss file holding the vectors of one catalog table under their ids, in the folder of ``store``.

    A subclass names the file and the table, and reads and writes its FileRecord in the manifest.
    """

    name: ClassVar[str]  # the file's name in the index directory
    table: ClassVar[type]  # the catalog table whose vectors it holds
    noun: ClassVar[str]  # what it holds, as said to the user ("vectors", "region vectors")
    absent: ClassVar[str]  # why there is nothing to serve when the manifest records no file

    def __init__(self, store: O):
        self.store = store
        self._searcher: Searcher | None = None

    @abc.abstractmethod
    def recorded(self) -> FileRecord | None:
        """What the manifest records of the file; None when it records none."""

    @abc.abstractmethod
    def record(self, record: FileRecord) -> None:
        """Write ``record`` into the manifest, once the file it describes is written."""

    @property
    def path(self) -> Path:
        return self.store.dir / self.name

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def data_path(self, record: FileRecord | None = None) -> Path | None:
        """The .ivfdata of the recorded (or given) on-disk index; None for an index held whole in its file."""
        record = record or self.recorded()
        return self.store.dir / record.ivfdata["file"] if record is not None and record.ivfdata else None

    def file_problem(self) -> str | None:
        """Why the file (and its .ivfdata) is not the one recorded (missing, or its content differs); None
        when it is."""
        record = self.recorded()
        if not self.path.is_file():
            return f"{self.path} is missing"
        if record is not None and record.checksum is not None and file_sha256(self.path) != record.checksum:
            return f"{self.path} does not match its checksum in the manifest (damaged or truncated)"
        if record is not None and record.ivfdata:
            from index.ann.ondisk import data_problem
            return data_problem(self.store.dir, record.ivfdata)
        return None

    def problem(self) -> str | None:
        """Why the file cannot be served as it is; None when it holds exactly the catalog's vectors."""
        record = self.recorded()
        if record is None:
            return f"the index at {self.store.dir} {self.absent}"
        problem = self.file_problem()
        if problem is None and record.ids_digest != ids_digest(self.store.catalog.vector_ids(table=self.table)):
            problem = f"{self.path} is out of step with the catalog"
        return problem

    def consistent(self) -> bool:
        return self.problem() is None

    def write(self, index_type: str, dim: int, *, map_shards: Mapper | None = None,
              progress: Progress | None = None) -> FileRecord:
        """Build the file from the catalog's stored vectors and write it atomically; what to record of it.

        An IVF index whose raw vectors reach ``index.ann.ondisk.min_bytes()`` is built on disk (trained on a
        sample, filled in shards, merged into an .ivfdata beside the file); any other is built in memory.
        ``map_shards`` runs its shard fills (index.ann.ondisk's mapper contract; default: worker processes);
        ``progress`` hears the on-disk build's stages (index.ann.ondisk.Progress). The caller holds write access
        and records the result.
        """
        from index.ann import ondisk
        from index.ann.factory import build_tuned, choose_factory
        from index.ann.searcher import save
        ids = self.store.catalog.vector_ids(table=self.table)
        factory = choose_factory(len(ids), dim, index_type) if len(ids) else "Flat"
        if ondisk.wanted(factory, len(ids), dim):
            return self._write_ondisk(index_type, factory, ids, dim, map_shards, progress)
        ids, vectors = self._catalog_vectors(dim)
        index, factory, search = build_tuned(vectors, ids, index_type)
        checksum = save(index, self.path)
        self._searcher = None
        return FileRecord(index_type=index_type, factory=factory, vectors=int(index.ntotal),
                          ids_digest=ids_digest(ids), search=search, checksum=checksum)

    def _write_ondisk(self, index_type: str, factory: str, ids: np.ndarray, dim: int,
                      map_shards: Mapper | None, progress: Progress | None) -> FileRecord:
        """The on-disk build: every stage in a hidden work folder of the index directory, the lists in a new
        .ivfdata (a name no recorded index uses), then the index file replaced atomically. A crash at any
        point leaves the recorded index and its .ivfdata as they were; ``tidy`` removes what it left."""
        from index.ann import ondisk
        from index.atomic import fsync_dir
        from index.catalog.vectors import CatalogVectors
        self.tidy()
        token = secrets.token_hex(6)
        work = self.store.dir / f".{self.stem}-build-{token}"
        data = self.store.dir / f"{self.stem}-{token}.ivfdata"
        source = CatalogVectors(self.store.catalog.url, self.table.__tablename__, dim)
        try:
            built = ondisk.build_ondisk(source, factory, work, data, ids=ids, map_shards=map_shards,
                                         progress=progress)
            checksum = file_sha256(built.index_file)
            os.replace(built.index_file, self.path)
            fsync_dir(self.store.dir)
        except BaseException:
            data.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._searcher = None
        return FileRecord(index_type=index_type, factory=factory, vectors=int(built.index.ntotal),
                          ids_digest=ids_digest(ids), search=built.search, checksum=checksum, ivfdata=built.data)

    def tidy(self) -> None:
        """Remove what on-disk builds left behind: work folders, and .ivfdata files the record does not name.

        Only a writer calls this (under the writer lock). A reader still searching an older .ivfdata keeps
        its mapping: the file's space is freed when the reader closes it.
        """
        keep = self.data_path()
        for path in self.store.dir.glob(f".{self.stem}-build-*"):
            shutil.rmtree(path, ignore_errors=True)
        for path in self.store.dir.glob(f"{self.stem}-*.ivfdata"):
            if path != keep:
                path.unlink(missing_ok=True)

    def rebuild(self, index_type: str | None = None, *, map_shards: Mapper | None = None,
                progress: Progress | None = None) -> FileRecord:
        """Rewrite the file from the catalog (as ``index_type``, else as recorded) and record it."""
        recorded = self.recorded()
        if recorded is None:
            raise RetrError(f"the index at {self.store.dir} {self.absent}: there is no {self.name} to rebuild")
        with self.store.write_access():
            record = self.write(index_type or recorded.index_type, self.store.dim, map_shards=map_shards,
                                progress=progress)
            self.record(record)
            self.tidy()
        return record

    def reconcile(self, *, progress: Progress | None = None) -> bool:
        """Rewrite the file when it disagrees with the catalog (``progress`` as for ``write``); True when it was
        rewritten.

        A reader takes the writer lock for it; when another process holds the lock (or the folder is
        read-only), the file is left as it is and a note says so.
        """
        if self.recorded() is None or (problem := self.problem()) is None:
            return False
        try:
            self.rebuild(progress=progress)
        except RetrError as exc:
            if self.store.writable:
                raise
            self.store.note(f"{problem}; it was not rewritten ({exc}); the next `retr index build` repairs it")
            return False
        return True

    def searcher(self) -> Searcher:
        """The searcher over the file, or, when it fails its checks, over a repaired one.

        A writer rewrites the file; a reader builds an exact index of the catalog's vectors in memory
        and never serves a file that failed verification.
        """
        from index.ann.searcher import Searcher
        if self._searcher is None:
            problem = self.problem()
            if problem is not None and self.store.writable:
                count = self.rebuild().vectors
                self.store.note(f"{problem}: rebuilt it from the catalog's {count} {self.noun}")
                problem = None
            self._searcher = Searcher(self._load() if problem is None else self._in_memory(problem))
        return self._searcher

    def _load(self) -> faiss.Index:
        """The verified file; an on-disk index with its lists memory-mapped from its .ivfdata."""
        from index.ann.ondisk import open_ondisk
        from index.ann.searcher import load
        data = self.data_path()
        return load(self.path) if data is None else open_ondisk(self.path, data)

    def _in_memory(self, problem: str) -> faiss.Index:
        """An exact index of the catalog's vectors, for a reader whose file failed its checks."""
        from index.ann.factory import available_memory, build
        count = len(self.store.catalog.vector_ids(table=self.table))
        if count * self.store.dim * 4 > available_memory() // 2:
            raise RetrError(f"{problem}; the catalog's {count} {self.noun} do not fit in memory to be searched "
                            "there instead: run `retr index build` to rebuild it")
        ids, vectors = self._catalog_vectors(self.store.dim)
        self.store.note(f"{problem}; searching the catalog's {len(ids)} {self.noun} in memory (the file is "
                        "left as it is: `retr index build` rewrites it)")
        return build(vectors, ids, "Flat")

    def _catalog_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every row of the table that holds a vector, in id order."""
        parts = list(self.store.catalog.iter_vectors(dim, table=self.table))
        if not parts:
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
