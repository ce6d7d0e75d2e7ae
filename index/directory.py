"""An index directory: manifest, catalog and the image vectors' faiss file, kept consistent with each other.

The catalog is the source of truth; vectors.faiss is a SyncedFile (index.synced_file): checked against
the catalog and its recorded sha256 before it is served (an interrupted build, a catalog edited by
dedupe, a deleted, garbled or truncated file), rebuilt by a writer, searched in memory by a reader.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from index.catalog import quarantine
from index.catalog.database import CATALOG_FILE, Catalog, Mode
from index.catalog.schema import Image
from index.errors import CatalogMissing, RetrError
from index.lock import FolderLock
from index.manifest import MANIFEST_FILE, Manifest, read_manifest, write_manifest
from index.synced_file import FileRecord, SyncedFile

if TYPE_CHECKING:
    from index.ann.ondisk import Mapper, Progress
    from index.ann.searcher import Searcher

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.faiss"


@dataclasses.dataclass
class Hit:
    rank: int
    id: int
    path: str
    score: float


@dataclasses.dataclass(frozen=True)
class SearchResults:
    """k-NN results for a batch of queries as arrays; ``results[i]`` gives query i's hits, best first.

    Hits are made only when read, so a large batch costs little more than faiss itself.
    """

    scores: np.ndarray  # float32 [n, k]
    ids: np.ndarray  # int64 [n, k], -1 where fewer than k exist
    paths: np.ndarray  # object [n, k]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> list[Hit]:
        ids, scores, paths = self.ids[i].tolist(), self.scores[i].tolist(), self.paths[i].tolist()
        hits = [(j, s, p) for j, s, p in zip(ids, scores, paths) if j >= 0 and p is not None]
        return [Hit(rank=r + 1, id=j, path=p, score=s) for r, (j, s, p) in enumerate(hits)]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


class IndexStore:
    def __init__(self, index_dir: Path, catalog: Catalog, manifest: Manifest | None, *,
                 lock: FolderLock | None = None):
        self.dir = index_dir
        self.catalog = catalog
        self.manifest = manifest
        self.repairs: list[str] = []  # what was found wrong and done about it, as said to the user
        self._lock = lock
        self.images = ImageFile(self)
        self._paths: np.ndarray | None = None

    @property
    def writable(self) -> bool:
        """Whether this store holds the writer lock (opened with mode write or create)."""
        return self._lock is not None

    @classmethod
    def open(cls, index_dir: str | Path, db_url: str | None = None, *, create: bool = False,
             mode: Mode | None = None, command: str | None = None) -> "IndexStore":
        """Open an index directory.

        ``mode`` read (the default) never writes anything and needs an existing catalog; write (an
        existing index) and create (``create=True``: made when absent; only `retr index build`) take the
        writer lock first and refuse a read-only index before any work. ``command`` names this process
        to a writer the lock turns away.
        """
        mode = mode or ("create" if create else "read")
        index_dir = Path(index_dir)
        if mode != "create" and not (index_dir / MANIFEST_FILE).exists():
            if not index_dir.exists():
                raise RetrError(f"no index at {index_dir}: build one with `retr index build PATH --index {index_dir}`")
            if db_url is None and not (index_dir / CATALOG_FILE).exists():
                raise RetrError(f"{index_dir} is not a retr index directory (no manifest.json)")
        if index_dir.exists() and not index_dir.is_dir():
            raise RetrError(f"{index_dir} is not a folder")
        manifest = read_manifest(index_dir)  # a damaged manifest is refused before anything is made
        if mode == "read":
            return cls(index_dir, _existing_catalog(index_dir, db_url, manifest, mode="read"), manifest)
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RetrError(f"cannot create the index folder {index_dir}: {exc.strerror or exc}") from exc
        lock = FolderLock(index_dir, command)
        lock.acquire()  # also the read-only check: the lock file cannot be made in a read-only folder
        try:
            catalog = (Catalog.for_index(index_dir, db_url, mode=mode, lock=True, command=command) if mode == "create"
                       else _existing_catalog(index_dir, db_url, manifest, mode=mode, command=command))
            try:
                catalog.check_writable()
            except BaseException:
                catalog.close()
                raise
            manifest = read_manifest(index_dir)  # again, under the lock: the last writer may have changed it
        except BaseException:
            lock.release()
            raise
        store = cls(index_dir, catalog, manifest, lock=lock)
        try:
            store.settle_quarantine()
        except BaseException:
            store.close()
            raise
        return store

    def settle_quarantine(self) -> None:
        """Complete or roll back quarantine moves and undos a crash cut short (every writer does this first,
        so no build embeds again a file whose move is half done); the faiss file then follows the catalog."""
        if not quarantine.pending(self.catalog):
            return
        for note in quarantine.recover(self.catalog):
            self.note(f"quarantine: {note}")
        if self.manifest is not None:
            self.reconcile()

    def close(self) -> None:
        try:
            self.catalog.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> "IndexStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def write_access(self) -> Iterator[None]:
        """The writer lock for a block: already held by a writable store, taken for it by a read store."""
        if self.writable:
            yield
            return
        lock = FolderLock(self.dir)
        lock.acquire()
        self._lock = lock  # writable for the block, so nested writes do not lock again
        try:
            with self.catalog.writer_lock():
                yield
        finally:
            self._lock = None
            lock.release()

    def note(self, message: str) -> None:
        """Record a repair (or a refusal to repair) and say it: the CLI prints these as warnings."""
        self.repairs.append(message)
        log.warning(message)

    # -- model -----------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        if self.manifest is None:
            raise RetrError(f"the index at {self.dir} has no vectors yet")
        return self.manifest.dim

    def check_model(self, identity: dict[str, Any]) -> None:
        """Refuse a model that differs from the one the index was built with."""
        check_model(self.manifest, self.dir, identity)

    # -- the faiss file ----------------------------------------------------------------------------------

    def file_problem(self) -> str | None:
        """Why vectors.faiss is not the file the manifest records (missing, or content changed); else None."""
        return self.images.file_problem()

    def vectors_problem(self) -> str | None:
        """Why vectors.faiss cannot be served as it is; None when it holds exactly the catalog's vectors."""
        return self.images.problem()

    def consistent(self) -> bool:
        """Whether vectors.faiss holds exactly the catalog's vectors, as written."""
        return self.images.consistent()

    def reconcile(self, *, progress: Progress | None = None) -> bool:
        """Rewrite vectors.faiss when it disagrees with the catalog; True when it was rewritten. ``progress``
        hears an on-disk rebuild's stages (index.ann.ondisk.Progress)."""
        return self.images.reconcile(progress=progress)

    def searcher(self) -> Searcher:
        """The searcher over vectors.faiss, verified or repaired (see SyncedFile.searcher)."""
        return self.images.searcher()

    def rebuild(self, *, index_type: str | None = None, model: dict[str, Any] | None = None,
                extra: dict[str, Any] | None = None, map_shards: Mapper | None = None,
                progress: Progress | None = None) -> Manifest:
        """Rebuild vectors.faiss from the catalog's stored vectors and write the manifest (atomically).

        ``model`` (default: the manifest's) is recorded as the model of the index; ``extra`` is merged
        into the manifest's extra settings. An IVF index large enough is built on disk, its shards filled by
        ``map_shards`` (index.ann.ondisk's mapper contract; default: worker processes); ``progress`` hears its
        stages (index.ann.ondisk.Progress).
        """
        model = model or (self.manifest.model if self.manifest else None)
        if model is None:
            raise RetrError("cannot rebuild an index that has no model recorded")
        dim = int(model["dim"])
        with self.write_access():
            record = self.images.write(index_type or (self.manifest.index_type if self.manifest else "auto"), dim,
                                       map_shards=map_shards, progress=progress)
            self.record_vectors_file(record, model=model, extra=extra)
            self.images.tidy()
        return self.manifest

    def record_vectors_file(self, record: FileRecord, *, model: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """Write the manifest of a newly written vectors.faiss, made by ``model``."""
        keep_extra = dict(self.manifest.extra) if self.manifest else {}
        keep_extra.update(extra or {})
        manifest = Manifest(model=dict(model), dim=int(model["dim"]), extra=keep_extra,
                            **dataclasses.asdict(record))
        write_manifest(self.dir, manifest)
        self.manifest = manifest
        self._paths = None

    def search(self, queries: np.ndarray, k: int = 10, *, nprobe: int | None = None,
               ef: int | None = None) -> SearchResults:
        """The k nearest catalog images of each query vector, best first."""
        if self.manifest is None:
            raise RetrError(f"the index at {self.dir} is empty: build it first")
        params = dict(self.manifest.search)
        if nprobe is not None:
            params["nprobe"] = nprobe
        if ef is not None:
            params["ef"] = ef
        scores, ids = self.searcher().search(queries, k, **params)
        return SearchResults(scores, ids, self._path_table()[ids])

    def _path_table(self) -> np.ndarray:
        """Paths indexed by catalog id, loaded once per store: the query path's id -> path lookup.

        Catalog ids are dense (autoincrement), so a direct table is small; its last slot stays None,
        which is where faiss's -1 ("no neighbour") lands.
        """
        if self._paths is None:
            mapping = self.catalog.paths_by_id(self.catalog.vector_ids())
            table = np.full(max(mapping, default=-1) + 2, None, dtype=object)
            for image_id, path in mapping.items():
                table[image_id] = path
            self._paths = table
        return self._paths

    def forget(self, image_id: int) -> None:
        """Answer no more for ``image_id`` (its row left the catalog): searches skip it, ``path_of`` is None."""
        table = self._path_table()
        if 0 <= image_id < len(table):
            table[image_id] = None

    def path_of(self, image_id: int) -> str | None:
        """The path of catalog image ``image_id`` when it has a vector, else None (one table lookup)."""
        table = self._path_table()
        return table[image_id] if 0 <= image_id < len(table) else None

    def paths(self) -> dict[int, str]:
        """id -> path of every image with a vector."""
        table = self._path_table()
        return {i: p for i, p in enumerate(table.tolist()) if p is not None}

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())

    def vectors_for(self, ids: Sequence[int]) -> np.ndarray:
        return self.catalog.vectors_for(ids, self.dim)


def check_model(manifest: Manifest | None, index_dir: Path, identity: dict[str, Any]) -> None:
    """Refuse a model (``identity``: spec, dim, weights; dim None compares the spec only) that differs from
    the one ``manifest`` records."""
    if manifest is None:
        return
    have = manifest.model
    if identity.get("dim") != have.get("dim") or identity.get("spec") != have.get("spec") \
            or identity.get("weights") != have.get("weights"):
        raise RetrError(
            f"model mismatch: the index at {index_dir} was built with {have.get('spec')} "
            f"(dim {have.get('dim')}, weights {str(have.get('weights'))[:19]}), not {identity.get('spec')}"
            + (f" (dim {identity.get('dim')}, weights {str(identity.get('weights'))[:19]})"
               if identity.get("dim") else "") + "; use another --index for another model")


def _existing_catalog(index_dir: Path, db_url: str | None, manifest: Manifest | None, *, mode: Mode,
                      command: str | None = None) -> Catalog:
    """The catalog of an existing index (read or write): it must exist, and hold vectors when the manifest does."""
    recorded = manifest.vectors if manifest is not None else 0
    advice = ("restore the catalog (or give the right --db), or start over with `retr index build PATH "
              "--index NEW_FOLDER`")
    try:
        catalog = Catalog.for_index(index_dir, db_url, mode=mode, lock=mode != "read", command=command)
    except CatalogMissing as exc:
        if recorded:
            raise RetrError(f"{exc} but the manifest of {index_dir} records {recorded} vectors; {advice}") from None
        raise RetrError(f"{exc}; check --db, or build an index with `retr index build PATH --index "
                        f"{index_dir}`") from None
    if recorded and not catalog.has_vectors():
        catalog.close()
        raise RetrError(f"the catalog {catalog.safe_url} is empty but the manifest of {index_dir} records "
                        f"{recorded} vectors; {advice}")
    return catalog


class ImageFile(SyncedFile[IndexStore]):
    """vectors.faiss: the image vectors, ids = catalog image ids; recorded in the manifest's own fields."""

    name = VECTORS_FILE
    table = Image
    noun = "vectors"
    absent = "has no manifest"

    def recorded(self) -> FileRecord | None:
        m = self.store.manifest
        return None if m is None else FileRecord(index_type=m.index_type, factory=m.factory, vectors=m.vectors,
                                                 ids_digest=m.ids_digest, search=dict(m.search),
                                                 checksum=m.checksum, ivfdata=m.ivfdata)

    def record(self, record: FileRecord) -> None:
        self.store.record_vectors_file(record, model=self.store.manifest.model)
