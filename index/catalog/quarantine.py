"""Quarantine moves recorded in the catalog, so that the catalog and the disk agree after a crash anywhere.

A move takes the image's row out of ``images`` into ``quarantined`` (whole: id, columns, vector) in one
transaction *before* the file moves, with state ``moving``; ``moved`` once the file is in the quarantine
folder. An undo marks the record ``restoring``, moves the file back, then puts the row back under its own
id and drops the record in one transaction. So no search ever names a file that has left, and a crash
leaves a record whose state and the disk say what happened: ``recover`` completes or rolls back each one.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Iterable

from sqlalchemy import delete, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from index.catalog.database import Catalog
from index.catalog.schema import MOVED, MOVING, RESTORING, Image, Quarantined

_COLUMNS = ("id", "path", "sha256", "bytes", "width", "height", "mtime", "status", "error", "vector", "model")


@dataclasses.dataclass(frozen=True)
class Record:
    """A quarantined image: where it came from (``path``), where retr put it (``dest``), its content."""

    id: int
    path: str
    sha256: str | None
    dest: str
    manifest: str
    state: str
    moved_at: float


def _record(row: Quarantined) -> Record:
    return Record(row.id, row.path, row.sha256, row.dest, row.manifest, row.state, row.moved_at)


def begin_move(catalog: Catalog, image_id: int, dest: str, manifest: str) -> bool:
    """Take image ``image_id``'s row out of the catalog into a ``moving`` record; False when it is gone."""
    with catalog.session() as s:
        row = s.get(Image, image_id)
        if row is None:
            return False
        values = {c: getattr(row, c) for c in _COLUMNS}
        s.execute(insert(Quarantined).values(**values, dest=dest, manifest=manifest, state=MOVING,
                                             moved_at=time.time()))
        s.execute(delete(Image).where(Image.id == image_id))
    return True


def set_state(catalog: Catalog, image_id: int, state: str) -> None:
    with catalog.session() as s:
        s.execute(update(Quarantined).where(Quarantined.id == image_id).values(state=state))


def put_back(catalog: Catalog, image_id: int) -> int | None:
    """The record's row back in ``images`` (under its own id; a new one if a later image took it) and the
    record dropped, in one transaction; the id it got, or None when a row of that path exists already."""
    with catalog.session() as s:
        rec = s.get(Quarantined, image_id)
        if rec is None:
            return None
        values = {c: getattr(rec, c) for c in _COLUMNS}
        if s.scalar(select(Image.id).where(Image.path == rec.path)) is not None:
            return None
        if s.get(Image, image_id) is not None:  # SQLite reuses the highest id once its row is gone
            values.pop("id")
        new_id = s.execute(insert(Image).values(**values).returning(Image.id)).scalar_one()
        s.execute(delete(Quarantined).where(Quarantined.id == image_id))
    return int(new_id)


def records(catalog: Catalog, *, manifest: str | None = None, states: Iterable[str] | None = None) -> list[Record]:
    query = select(Quarantined).order_by(Quarantined.id)
    if manifest is not None:
        query = query.where(Quarantined.manifest == manifest)
    if states is not None:
        query = query.where(Quarantined.state.in_(list(states)))
    with catalog.session() as s:
        return [_record(r) for r in s.scalars(query)]


def _exists(catalog: Catalog) -> bool:
    """Whether the catalog has the table (a catalog only ever opened to be read since it was made may not)."""
    return inspect(catalog.engine).has_table(Quarantined.__tablename__)


def manifests(catalog: Catalog) -> list[dict]:
    """Each manifest with files in the quarantine: its path, how many, and when they moved (newest first)."""
    if not _exists(catalog):
        return []
    with catalog.session() as s:
        rows = s.execute(select(Quarantined.manifest, func.count(), func.min(Quarantined.moved_at))
                         .group_by(Quarantined.manifest).order_by(func.min(Quarantined.moved_at).desc())).all()
    return [{"manifest": m, "files": int(n), "moved_at": float(t)} for m, n, t in rows]


def pending(catalog: Catalog) -> bool:
    """Whether a move or an undo was cut short (a record neither moved nor gone)."""
    if not _exists(catalog):
        return False
    with catalog.session() as s:
        return s.scalar(select(Quarantined.id).where(Quarantined.state != MOVED).limit(1)) is not None


def recover(catalog: Catalog) -> list[str]:
    """Complete or roll back every move and undo cut short, from its record and the disk; what was done.

    A ``moving`` file still at its place goes back in the catalog (the move never happened); one in the
    quarantine is ``moved``. A ``restoring`` file back at its place gets its row back (the undo finishes);
    one still in the quarantine stays ``moved``. A file found in both places or in neither is left as it is
    and said (the record stays, so nothing is forgotten).
    """
    done = []
    for rec in records(catalog, states=(MOVING, RESTORING)):
        at_src, at_dest = os.path.lexists(rec.path), os.path.lexists(rec.dest)
        if at_dest and not at_src:
            set_state(catalog, rec.id, MOVED)
            done.append(f"{rec.path}: {'its move finished' if rec.state == MOVING else 'its undo never moved it'}"
                        f"; it stays in the quarantine")
        elif at_src and not at_dest:
            try:
                new_id = put_back(catalog, rec.id)
            except IntegrityError:
                new_id = None
            verb = "its move never happened" if rec.state == MOVING else "its undo finished"
            done.append(f"{rec.path}: {verb}; its catalog row is back" if new_id is not None else
                        f"{rec.path}: back in place, but the catalog already has a row for it; record kept")
        else:
            where = "both in place and in the quarantine" if at_src else "neither in place nor in the quarantine"
            done.append(f"{rec.path}: found {where}; left as it is (record kept)")
    return done
