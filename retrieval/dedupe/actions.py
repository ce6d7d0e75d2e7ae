"""Acting on duplicates safely: move to a quarantine folder (with an undo manifest), or delete.

The manifest is a JSON-lines journal written before anything moves: a header, one ``plan`` line per file,
then a ``moved`` line appended (and fsynced) after each move. An interrupted run therefore leaves a
manifest whose ``moved`` lines are exactly the files that moved; ``undo`` also checks the disk, so even a
crash between a move and its line is reversed correctly. The kept image of a group is never touched.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from index.catalog import Catalog
from index.errors import RetrError
from retrieval.dedupe.finder import Group

MANIFEST_FORMAT = "retr-dedupe-manifest"
MANIFEST_VERSION = 1
Mover = Callable[[str, str], Any]


@dataclasses.dataclass(frozen=True)
class CatalogLink:
    """The catalog to keep in step with the disk, and its vector dimension (None: no vectors)."""

    catalog: Catalog
    dim: int | None = None
    index_dir: str | None = None


@dataclasses.dataclass
class ActionReport:
    action: str
    done: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (source, destination or "")
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, reason)
    manifest: str | None = None
    catalog_rows: int = 0  # rows removed (move, delete) or restored (undo)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "done": [{"path": s, "to": d} for s, d in self.done],
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped], "manifest": self.manifest,
                "catalog_rows": self.catalog_rows}


def _duplicates(groups: Sequence[Group]) -> list[tuple[Any, str]]:
    """(duplicate item, kept path) of every group; refuses a plan that would touch a kept image."""
    keeps = {g.keep.path for g in groups}
    out = []
    for g in groups:
        for d in g.duplicates:
            if d.item.path in keeps:
                raise RetrError(f"refusing to act: {d.item.path} is both kept and a duplicate")
            out.append((d.item, g.keep.path))
    return out


def common_root(paths: Iterable[str]) -> str:
    """The deepest folder holding every path (duplicates keep their place relative to it)."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    if not folders:
        raise RetrError("nothing to move")
    return os.path.commonpath(folders)


def _row_record(catalog_link: CatalogLink | None, item) -> dict[str, Any] | None:
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


class _Journal:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise RetrError(f"manifest {path} already exists")
        self.fh = open(path, "x", encoding="utf-8")

    def write(self, *records: dict[str, Any]) -> None:
        for rec in records:
            self.fh.write(json.dumps(rec, sort_keys=True) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def default_manifest(dest: str | Path) -> Path:
    return Path(dest) / f"retr-dedupe-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.jsonl"


def _delete_rows(link: CatalogLink | None, items: Sequence[Any]) -> int:
    if link is None or not items:
        return 0
    return link.catalog.delete_images([it.id for it in items if it.id is not None])


def move_duplicates(groups: Sequence[Group], dest: str | Path, *, root: str | None = None,
                    manifest: str | Path | None = None, catalog: CatalogLink | None = None,
                    mover: Mover = shutil.move) -> ActionReport:
    """Move every duplicate to ``dest``/<path relative to ``root``>; the manifest records it for undo."""
    dups = _duplicates(groups)
    report = ActionReport("move")
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
    journal = _Journal(Path(manifest) if manifest else default_manifest(dest))
    report.manifest = str(journal.path)
    journal.write({"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "action": "move", "dest": str(dest),
                   "root": root, "created": time.time(),
                   "index": catalog.index_dir if catalog else None},
                  *({"op": "plan", "src": it.path, "dst": d, "keep": k, "sha256": it.sha256,
                     "row": _row_record(catalog, it)} for it, k, d in plan))
    moved_items = []
    try:
        for item, _keep, dst in plan:
            if not os.path.lexists(item.path):
                report.skipped.append((item.path, "no longer exists"))
                journal.write({"op": "skipped", "src": item.path, "reason": "no longer exists"})
                continue
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            try:
                mover(item.path, dst)
            except OSError as exc:
                report.skipped.append((item.path, f"cannot move: {exc.strerror or exc}"))
                journal.write({"op": "failed", "src": item.path, "error": str(exc)})
                continue
            journal.write({"op": "moved", "src": item.path})
            moved_items.append(item)
            report.done.append((item.path, dst))
    finally:
        journal.close()
        report.catalog_rows = _delete_rows(catalog, moved_items)
    return report


def read_manifest(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RetrError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if n == len(lines):  # a line cut short by a crash: everything before it is valid
                break
            raise RetrError(f"manifest {path} line {n} is not JSON") from None
    if not records or records[0].get("format") != MANIFEST_FORMAT:
        raise RetrError(f"{path} is not a retr dedupe manifest")
    return records[0], records[1:]


def undo(manifest: str | Path, *, catalog: CatalogLink | None = None, mover: Mover = shutil.move) -> ActionReport:
    """Move every quarantined file back (checking the disk, not only the journal) and restore catalog rows."""
    header, records = read_manifest(manifest)
    report = ActionReport("undo", manifest=str(manifest))
    restored = {r["src"] for r in records if r.get("op") == "restored"}
    plans = [r for r in records if r.get("op") == "plan" and r["src"] not in restored]
    rows = []
    with open(manifest, "a", encoding="utf-8") as fh:
        for rec in plans:
            src, dst = rec["src"], rec["dst"]
            at_dst, at_src = os.path.lexists(dst), os.path.lexists(src)
            if not at_dst:
                if not at_src:
                    report.skipped.append((src, f"missing from both {src} and {dst}"))
                continue  # never moved (or already back)
            if at_src:
                report.skipped.append((src, f"both {src} and {dst} exist; left as they are"))
                continue
            os.makedirs(os.path.dirname(src), exist_ok=True)
            try:
                mover(dst, src)
            except OSError as exc:
                report.skipped.append((src, f"cannot move back: {exc.strerror or exc}"))
                continue
            fh.write(json.dumps({"op": "restored", "src": src}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            report.done.append((dst, src))
            if rec.get("row"):
                rows.append(rec["row"])
    if catalog is not None and rows:
        records_out = []
        for row in rows:
            row = dict(row)
            if row.get("vector"):
                row["vector"] = np.frombuffer(base64.b64decode(row["vector"]), dtype=np.float32)
            records_out.append(row)
        report.catalog_rows = len(catalog.catalog.write_images(records_out))
    return report


def delete_duplicates(groups: Sequence[Group], *, yes: bool, catalog: CatalogLink | None = None,
                      remover: Callable[[str], Any] = os.remove) -> ActionReport:
    """Delete every duplicate (never a kept image); refuses without ``yes``."""
    if not yes:
        raise RetrError("--delete removes files for good: add --yes to confirm (or use --move-to DIR)")
    report = ActionReport("delete")
    deleted = []
    try:
        for item, _keep in _duplicates(groups):
            try:
                remover(item.path)
            except FileNotFoundError:
                report.skipped.append((item.path, "no longer exists"))
                deleted.append(item)  # gone from disk either way: drop its row
                continue
            except OSError as exc:
                report.skipped.append((item.path, f"cannot delete: {exc.strerror or exc}"))
                continue
            deleted.append(item)
            report.done.append((item.path, ""))
    finally:
        report.catalog_rows = _delete_rows(catalog, deleted)
    return report
