"""Perceptual hashes stored in the catalog (image_hashes), computed once per file content.

A stored hash is current when its ``sha256`` equals its image's: a file whose content changed (and was
re-indexed) is hashed again, everything else is reused, so dedupe is incremental.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from sqlalchemy import and_, delete, func, select

from index.catalog.database import Catalog
from index.catalog.schema import STATUS_ERROR, Image, ImageHash

_CHUNK = 500


@dataclasses.dataclass(frozen=True)
class HashTable:
    """Current hashes of one kind and size: catalog ids and packed codes (uint8 [n, nbytes]), id order."""

    ids: np.ndarray
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclasses.dataclass(frozen=True)
class Pending:
    """A catalog image whose hash is missing or stale."""

    id: int
    path: str
    sha256: str


def _current(kind: str, hash_size: int):
    return and_(ImageHash.image_id == Image.id, ImageHash.kind == kind, ImageHash.hash_size == hash_size,
                ImageHash.sha256 == Image.sha256)


def load_hashes(catalog: Catalog, kind: str, hash_size: int, nbytes: int) -> HashTable:
    """Every current hash of ``kind``/``hash_size`` (images whose content changed are left out)."""
    with catalog.session() as s:
        rows = s.execute(select(Image.id, ImageHash.bits).join(ImageHash, _current(kind, hash_size))
                         .order_by(Image.id)).all()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    bad = [r[0] for r in rows if len(r[1]) != nbytes]
    if bad:
        raise ValueError(f"stored {kind} hashes of size {hash_size} are not {nbytes} bytes (e.g. image {bad[0]})")
    codes = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), nbytes)
    return HashTable(ids, codes.copy())


def pending_hashes(catalog: Catalog, kind: str, hash_size: int) -> list[Pending]:
    """Readable catalog images without a current hash of ``kind``/``hash_size``, in id order."""
    with catalog.session() as s:
        current = select(ImageHash.image_id).join(Image, _current(kind, hash_size))
        rows = s.execute(select(Image.id, Image.path, Image.sha256)
                         .where(Image.status != STATUS_ERROR, Image.sha256.is_not(None), Image.id.not_in(current))
                         .order_by(Image.id)).all()
    return [Pending(int(r[0]), r[1], r[2]) for r in rows]


def store_hashes(catalog: Catalog, kind: str, hash_size: int, entries: Sequence[tuple[int, bytes, str]]) -> int:
    """Insert or replace hashes: (image id, packed bits, sha256 of the content hashed), one transaction."""
    if not entries:
        return 0
    with catalog.session() as s:
        ids = [int(e[0]) for e in entries]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            s.execute(delete(ImageHash).where(ImageHash.image_id.in_(chunk), ImageHash.kind == kind,
                                              ImageHash.hash_size == hash_size))
        s.add_all(ImageHash(image_id=int(i), kind=kind, hash_size=int(hash_size), bits=bytes(bits), sha256=sha)
                  for i, bits, sha in entries)
    return len(entries)


def hash_counts(catalog: Catalog) -> dict[tuple[str, int], int]:
    """Stored hashes per (kind, hash_size), current or not."""
    with catalog.session() as s:
        rows = s.execute(select(ImageHash.kind, ImageHash.hash_size, func.count()).group_by(
            ImageHash.kind, ImageHash.hash_size)).all()
    return {(r[0], int(r[1])): int(r[2]) for r in rows}


def ids_with_sha256(catalog: Catalog, sha256: str) -> dict[int, str]:
    """Catalog images (id -> path) whose content has this sha256 (an indexed lookup)."""
    with catalog.session() as s:
        return {int(r[0]): r[1] for r in s.execute(select(Image.id, Image.path).where(Image.sha256 == sha256))}
