"""Acting on duplicates safely: move to a quarantine folder (with an undo manifest), or delete.

The manifest is a JSON-lines journal written before anything moves: a header, one ``plan`` line per file,
then a ``moved`` line appended (and fsynced) after each move. An interrupted run therefore leaves a
manifest whose ``moved`` lines are exactly the files that moved; ``undo`` also checks the disk, so even a
crash between a move and its line is reversed correctly.

With an index's catalog, the catalog itself records each move (index.catalog.quarantine): the image's row
leaves the catalog before its file moves and comes back, under its own id, after an undo moved the file
back, so a crash at any point leaves the catalog and the disk in agreement once ``recover`` has run. Undo
then trusts nothing in the manifest file but its name: what moves back, from where to where, and the row
restored all come from the catalog's record.

Nothing is acted on from a stale picture: right before acting, every kept image must still exist with the
content it was grouped by, and every duplicate is hashed again and must still hold what was hashed (or
what the catalog records). A duplicate that is a symlink, that other paths reach too, or that is the very
file a kept path reaches (a link) is never touched. Each one left alone is a skip with its reason.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from index.catalog import quarantine as recorded
from index.catalog.database import Catalog
from index.catalog.schema import MOVED, RESTORING
from index.errors import NotFound, RetrError
from retrieval.dedupe.fileops import FileId, file_id, is_direct, move_file, sha256_of
from retrieval.dedupe.finder import Group, Item
from retrieval.dedupe.manifest import (MANIFEST_FORMAT, MANIFEST_VERSION, Journal, default_manifest,
                                       read_manifest)

Mover = Callable[[str, str], Any]


def _no_hold(_image_id: int) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


@dataclasses.dataclass(frozen=True)
class CatalogLink:
    """The catalog to keep in step with the disk, and its vector dimension (None: no vectors).

    ``hold(image_id)`` wraps the moment an image's row leaves the catalog (a server takes its search lock
    and forgets the path there, so no answer names a file that is leaving)."""

    catalog: Catalog
    dim: int | None = None
    index_dir: str | None = None
    hold: Callable[[int], contextlib.AbstractContextManager[None]] = _no_hold


@dataclasses.dataclass
class ActionReport:
    action: str
    done: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (source, destination or "")
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, reason)
    manifest: str | None = None
    catalog_rows: int = 0  # rows removed (move, delete) or restored (undo)
    recovered: list[str] = dataclasses.field(default_factory=list)  # moves and undos a crash cut short, settled

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "done": [{"path": s, "to": d} for s, d in self.done],
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped], "manifest": self.manifest,
                "catalog_rows": self.catalog_rows, "recovered": self.recovered}


def _kept_problem(keep: Item) -> str | None:
    if file_id(keep.path) is None:
        return "no longer exists"
    if keep.sha256 is None or sha256_of(keep.path) != keep.sha256:
        return "changed since it was hashed"
    return None


def _duplicate_problem(item: Item, kept_files: set[FileId]) -> str | None:
    if item.aliases:
        return f"the same file is also reached as {item.aliases[0]}; left in place"
    if os.path.islink(item.path):
        return "a symbolic link; left in place"
    if file_id(item.path) in kept_files:
        return "the same file as a kept image (a link); left in place"
    if item.sha256 is None or sha256_of(item.path) != item.sha256:
        return "changed since it was hashed (sha256 differs); left in place"
    return None


def _checked_duplicates(groups: Sequence[Group], report: ActionReport) -> tuple[list[tuple[Item, str]], list[Item]]:
    """(duplicate, kept path) pairs that are safe to act on now, and the duplicates already gone; every
    other duplicate goes to ``report.skipped`` with its reason. Refuses a plan that would touch a kept image."""
    keeps = {g.keep.path for g in groups}
    kept_files = {f for f in map(file_id, keeps) if f is not None}
    safe, gone = [], []
    for g in groups:
        kept_problem = _kept_problem(g.keep)
        for d in g.duplicates:
            item = d.item
            if item.path in keeps:
                raise RetrError(f"refusing to act: {item.path} is both kept and a duplicate")
            if not os.path.lexists(item.path):
                problem = "no longer exists"
                gone.append(item)
            elif kept_problem:
                problem = f"its kept copy {g.keep.path} {kept_problem}; left in place"
            else:
                problem = _duplicate_problem(item, kept_files)
            if problem:
                report.skipped.append((item.path, problem))
            else:
                safe.append((item, g.keep.path))
    return safe, gone


def common_root(paths: Iterable[str]) -> str:
    """The deepest folder holding every path (duplicates keep their place relative to it)."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    if not folders:
        raise RetrError("nothing to move")
    return os.path.commonpath(folders)


def _row_record(catalog_link: CatalogLink | None, item: Item) -> dict[str, Any] | None:
    if catalog_link is None or item.id is None:
        return None
    rows = catalog_link.catalog.rows_by_id([item.id])
    row = rows.get(int(item.id))
    if row is None or row.path != item.path:
        return None
    record = {"path": row.path, "sha256": row.sha256, "bytes": row.bytes, "width": row.width,
              "height": row.height, "mtime": row.mtime, "status": row.status, "error": row.error}
    if row.has_vector and catalog_link.dim:
        vec = catalog_link.catalog.vectors_for([row.id], catalog_link.dim)[0]
        record["vector"] = base64.b64encode(vec.astype(np.float32).tobytes()).decode("ascii")
    return record


def _delete_rows(link: CatalogLink | None, items: Sequence[Any]) -> int:
    if link is None or not items:
        return 0
    return link.catalog.delete_images([it.id for it in items if it.id is not None])


def move_duplicates(groups: Sequence[Group], dest: str | Path, *, root: str | None = None,
                    manifest: str | Path | None = None, catalog: CatalogLink | None = None,
                    mover: Mover = move_file) -> ActionReport:
    """Move every duplicate to ``dest``/<path relative to ``root``>; the manifest records it for undo."""
    report = ActionReport("move")
    dups, _gone = _checked_duplicates(groups, report)
    if not dups:
        return report
    dest = Path(dest).resolve()
    root = root or common_root([it.path for it, _ in dups] + [k for _, k in dups])
    plan = []
    for item, keep in dups:
        rel = os.path.relpath(os.path.abspath(item.path), root)
        if rel.startswith(os.pardir):
            raise RetrError(f"{item.path} is not under {root}")
        plan.append((item, keep, str(dest / rel)))
    clashes = [d for _, _, d in plan if os.path.lexists(d)]
    if clashes:
        raise RetrError(f"{clashes[0]} already exists in the quarantine folder; nothing was moved")
    journal = Journal(Path(manifest) if manifest else default_manifest(dest))
    report.manifest = str(journal.path)
    recorded_by_catalog = catalog is not None and all(it.id is not None for it, _, _ in plan)
    journal.write({"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "action": "move", "dest": str(dest),
                   "root": root, "created": time.time(),
                   "index": catalog.index_dir if catalog else None},
                  *({"op": "plan", "src": it.path, "dst": d, "keep": k, "sha256": it.sha256,
                     "row": None if recorded_by_catalog else _row_record(catalog, it)} for it, k, d in plan))
    moved_items = []
    try:
        for item, _keep, dst in plan:
            if not os.path.lexists(item.path):
                report.skipped.append((item.path, "no longer exists"))
                journal.write({"op": "skipped", "src": item.path, "reason": "no longer exists"})
                continue
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if recorded_by_catalog:
                with catalog.hold(int(item.id)):  # the row leaves the catalog before the file moves
                    if not recorded.begin_move(catalog.catalog, int(item.id), dst, str(journal.path)):
                        report.skipped.append((item.path, "no longer in the catalog; left in place"))
                        journal.write({"op": "skipped", "src": item.path, "reason": "no longer in the catalog"})
                        continue
            try:
                mover(item.path, dst)
            except OSError as exc:
                if recorded_by_catalog:
                    recorded.put_back(catalog.catalog, int(item.id))
                report.skipped.append((item.path, f"cannot move: {exc.strerror or exc}"))
                journal.write({"op": "failed", "src": item.path, "error": str(exc)})
                continue
            if recorded_by_catalog:
                recorded.set_state(catalog.catalog, int(item.id), MOVED)
                report.catalog_rows += 1
            journal.write({"op": "moved", "src": item.path})
            moved_items.append(item)
            report.done.append((item.path, dst))
    finally:
        journal.close()
        if not recorded_by_catalog:
            report.catalog_rows = _delete_rows(catalog, moved_items)
    return report


def _restore_problem(rec: dict[str, Any]) -> str | None:
    """Why the quarantined file of a plan line is not moved back ("" when it simply was never moved)."""
    src, dst = rec["src"], rec["dst"]
    if not os.path.lexists(dst):
        return "" if os.path.lexists(src) else f"missing from both {src} and {dst}"
    if os.path.lexists(src):
        return f"both {src} and {dst} exist; left as they are"
    if not is_direct(dst) or not os.path.isfile(dst):
        return f"{dst} is not a plain file in the quarantine folder (a symbolic link?); left as it is"
    if sha256_of(dst) != rec["sha256"]:
        return f"{dst} does not hold the content the manifest records (sha256 differs); left as it is"
    return None


def _catalog_rows(plans: Sequence[dict[str, Any]], link: CatalogLink | None, manifest: str | Path
                  ) -> dict[str, dict[str, Any]]:
    """The catalog row to restore for each src (vectors decoded and checked against the index's dimension)."""
    if link is None:
        return {}
    rows = {}
    for rec in plans:
        if not rec["row"]:
            continue
        row = dict(rec["row"])
        if "vector" in row:
            vec = np.frombuffer(base64.b64decode(row.pop("vector")), dtype=np.float32)
            if link.dim and len(vec) != link.dim:
                raise RetrError(f"manifest {manifest}: the vector of {rec['src']} has {len(vec)} values, the "
                                f"index {link.dim}; nothing was moved")
            if link.dim:
                row["vector"] = vec
        rows[rec["src"]] = row
    return rows


def undo_recorded(manifest: str | Path, catalog: CatalogLink, *, mover: Mover = move_file) -> ActionReport:
    """Reverse the moves the catalog records for ``manifest`` (its resolved path is all that is read of it):
    each file goes back from where retr put it, with the content it had, to where it came from (which must
    be free), and its row returns under its own id."""
    name = os.path.realpath(manifest)
    report = ActionReport("undo", manifest=str(manifest))
    report.recovered = recorded.recover(catalog.catalog)
    moves = recorded.records(catalog.catalog, manifest=name, states=(MOVED,))
    if not moves:
        raise NotFound(f"nothing of {manifest} is in the quarantine by this index's catalog (never moved by "
                       "retr here, or undone already)")
    for rec in moves:
        src, dst = rec.path, rec.dest
        if os.path.lexists(src):
            problem = f"{src} exists again; {dst} left in the quarantine"
        elif not os.path.lexists(dst):
            problem = f"missing from the quarantine ({dst})"
        elif not is_direct(dst) or not os.path.isfile(dst):
            problem = f"{dst} is not a plain file in the quarantine folder (a symbolic link?); left as it is"
        elif sha256_of(dst) != rec.sha256:
            problem = f"{dst} does not hold the content that was moved (sha256 differs); left as it is"
        else:
            problem = None
        if problem:
            report.skipped.append((src, problem))
            continue
        recorded.set_state(catalog.catalog, rec.id, RESTORING)
        try:
            os.makedirs(os.path.dirname(src), exist_ok=True)
            mover(dst, src)
        except OSError as exc:
            recorded.set_state(catalog.catalog, rec.id, MOVED)
            report.skipped.append((src, f"cannot move back: {exc.strerror or exc}"))
            continue
        if recorded.put_back(catalog.catalog, rec.id) is None:
            report.skipped.append((src, "moved back, but the catalog already has a row for it (record kept)"))
            continue
        report.done.append((dst, src))
        report.catalog_rows += 1
    return report


def undo(manifest: str | Path, *, catalog: CatalogLink | None = None, mover: Mover = move_file) -> ActionReport:
    """Move quarantined files back and restore their catalog rows; trusts neither the manifest nor the disk.

    With a catalog, only what it recorded moves back (``undo_recorded``). Without one, every line is checked before
    anything moves; a file goes back only from under the quarantine folder (no symlink on the way), with the
    content the manifest records, to a ``src`` that does not exist.
    """
    if catalog is not None:
        return undo_recorded(manifest, catalog, mover=mover)
    header, records = read_manifest(manifest)
    dest = header["dest"]
    if not is_direct(dest):
        raise RetrError(f"the quarantine folder {dest} is reached through a symbolic link; nothing was moved")
    restored = {r["src"] for r in records if r["op"] == "restored"}
    plans = [r for r in records if r["op"] == "plan" and r["src"] not in restored]
    rows = _catalog_rows(plans, catalog, manifest)
    report = ActionReport("undo", manifest=str(manifest))
    back = []
    journal = Journal(Path(manifest), append=True)
    try:
        for rec in plans:
            src, dst = rec["src"], rec["dst"]
            problem = _restore_problem(rec)
            if problem is not None:
                if problem:
                    report.skipped.append((src, problem))
                continue
            os.makedirs(os.path.dirname(src), exist_ok=True)
            try:
                mover(dst, src)
            except OSError as exc:
                report.skipped.append((src, f"cannot move back: {exc.strerror or exc}"))
                continue
            journal.write({"op": "restored", "src": src})
            report.done.append((dst, src))
            if src in rows:
                back.append(rows[src])
    finally:
        journal.close()
        if catalog is not None and back:
            report.catalog_rows = len(catalog.catalog.write_images(back))
    return report


def delete_duplicates(groups: Sequence[Group], *, yes: bool, catalog: CatalogLink | None = None,
                      remover: Callable[[str], Any] = os.remove) -> ActionReport:
    """Delete every duplicate (never a kept image); refuses without ``yes``."""
    if not yes:
        raise RetrError("--delete removes files for good: add --yes to confirm (or use --move-to DIR)")
    report = ActionReport("delete")
    dups, gone = _checked_duplicates(groups, report)
    deleted = list(gone)  # gone from disk either way: drop their rows
    try:
        for item, _keep in dups:
            try:
                remover(item.path)
            except FileNotFoundError:
                report.skipped.append((item.path, "no longer exists"))
                deleted.append(item)
                continue
            except OSError as exc:
                report.skipped.append((item.path, f"cannot delete: {exc.strerror or exc}"))
                continue
            deleted.append(item)
            report.done.append((item.path, ""))
    finally:
        report.catalog_rows = _delete_rows(catalog, deleted)
    return report
