"""The undo manifest of a ``--move-to`` run: a JSON-lines journal, and a reader that trusts no line of it.

The journal holds a header, one ``plan`` line per file (written before anything moves), then ``moved``,
``skipped`` or ``failed`` lines as the run goes, and ``restored`` lines appended by undo. The reader checks
every line before undo moves anything: exact keys and types, a ``dst`` under the header's quarantine
folder, a ``src`` that is where that file came from (the root plus the same relative path), and a catalog
``row`` that describes exactly that ``src`` and content. A bad line is a one-line error naming it.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable

from index.errors import RetrError

MANIFEST_FORMAT = "retr-dedupe-manifest"
MANIFEST_VERSION = 1

Check = tuple[Callable[[Any], bool], str]  # predicate, what the value must be


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _path(v: Any) -> bool:
    return isinstance(v, str) and "\0" not in v and os.path.isabs(v) and os.path.normpath(v) == v


def _sha256(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None


def _vector(v: Any) -> bool:
    try:
        return isinstance(v, str) and len(base64.b64decode(v, validate=True)) % 4 == 0
    except (binascii.Error, ValueError):
        return False


def _optional(check: Check) -> Check:
    return (lambda v: v is None or check[0](v)), f"{check[1]} or null"


STR: Check = (lambda v: isinstance(v, str), "a string")
PATH: Check = (_path, "an absolute, normalised path")
SHA256: Check = (_sha256, "a sha256 hex digest")
INT: Check = (_int, "an integer")
NUMBER: Check = (_number, "a number")
SRC = {"op": STR, "src": PATH}

HEADER: dict[str, Check] = {
    "format": (lambda v: v == MANIFEST_FORMAT, repr(MANIFEST_FORMAT)),
    "version": (lambda v: _int(v) and v == MANIFEST_VERSION, str(MANIFEST_VERSION)),
    "action": (lambda v: v == "move", "'move'"), "dest": PATH, "root": PATH, "created": NUMBER,
    "index": _optional(STR)}
RECORDS: dict[str, dict[str, Check]] = {
    "plan": {**SRC, "dst": PATH, "keep": STR, "sha256": SHA256,
             "row": (lambda v: v is None or isinstance(v, dict), "an object or null")},
    "moved": SRC, "restored": SRC, "skipped": {**SRC, "reason": STR}, "failed": {**SRC, "error": STR}}
ROW: dict[str, Check] = {"path": PATH, "sha256": SHA256, "bytes": _optional(INT), "width": _optional(INT),
                         "height": _optional(INT), "mtime": _optional(NUMBER), "status": STR, "error": _optional(STR)}
ROW_OPTIONAL: dict[str, Check] = {"vector": (_vector, "base64 float32 values")}


def _checked(rec: Any, required: dict[str, Check], optional: dict[str, Check] | None = None) -> str | None:
    """What is wrong with ``rec`` against the schema, or None."""
    optional = optional or {}
    if not isinstance(rec, dict):
        return "not a JSON object"
    missing = [k for k in required if k not in rec]
    if missing:
        return f"missing key(s) {', '.join(map(repr, missing))}"
    unknown = sorted(k for k in rec if k not in required and k not in optional)
    if unknown:
        return f"unknown key(s) {', '.join(map(repr, unknown))}"
    for key, (ok, what) in {**required, **optional}.items():
        if key in rec and not ok(rec[key]):
            return f"{key!r} must be {what}"
    return None


def _plan_problem(rec: dict[str, Any], header: dict[str, Any]) -> str | None:
    dest, root, src, dst = header["dest"], header["root"], rec["src"], rec["dst"]
    if not dst.startswith(dest.rstrip(os.sep) + os.sep):
        return f"dst {dst!r} is not inside the quarantine folder {dest!r}"
    if src != os.path.join(root, os.path.relpath(dst, dest)):
        return f"src {src!r} is not where {dst!r} came from (under {root!r})"
    row = rec["row"]
    if row is not None:
        problem = _checked(row, ROW, ROW_OPTIONAL)
        if problem:
            return f"row: {problem}"
        if row["path"] != src or row["sha256"] != rec["sha256"]:
            return "row does not describe src and its sha256"
    return None


def _lines(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-empty line; a last line cut short by a crash is dropped."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RetrError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    raw = data.split(b"\n")
    out = []
    for n, line in enumerate(raw, 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line.decode("utf-8"))))
        except UnicodeDecodeError:
            if n == len(raw):  # only a last line without its newline can be cut short
                break
            raise RetrError(f"manifest {path} line {n} is not UTF-8; nothing was moved") from None
        except ValueError:
            if n == len(raw):
                break
            raise RetrError(f"manifest {path} line {n} is not JSON; nothing was moved") from None
    return out


def read_manifest(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and records of a manifest, every line checked; a bad line raises a RetrError naming it."""
    path = Path(path)
    lines = _lines(path)
    if not lines or not isinstance(lines[0][1], dict) or lines[0][1].get("format") != MANIFEST_FORMAT:
        raise RetrError(f"{path} is not a retr dedupe manifest")

    def bad(n: int, problem: str) -> RetrError:
        return RetrError(f"manifest {path} line {n}: {problem}; nothing was moved")

    header = lines[0][1]
    problem = _checked(header, HEADER)
    if problem:
        raise bad(lines[0][0], problem)
    records: list[dict[str, Any]] = []
    srcs: set[str] = set()
    dsts: set[str] = set()
    for n, rec in lines[1:]:
        op = rec.get("op") if isinstance(rec, dict) else None
        if op not in RECORDS:
            raise bad(n, f"unknown op {op!r}")
        problem = _checked(rec, RECORDS[op])
        if problem is None and op == "plan":
            problem = _plan_problem(rec, header)
            if problem is None and (rec["src"] in srcs or rec["dst"] in dsts):
                problem = "a second plan for the same src or dst"
            srcs.add(rec["src"])
            dsts.add(rec["dst"])
        elif problem is None and rec["src"] not in srcs:
            problem = f"{op} {rec['src']!r} has no plan line before it"
        if problem:
            raise bad(n, problem)
        records.append(rec)
    return header, records


class Journal:
    """An append-only manifest: each write is flushed and fsynced before the caller moves on."""

    def __init__(self, path: Path, *, append: bool = False):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(path, "a" if append else "x", encoding="utf-8")
        except FileExistsError:
            if not path.parent.is_dir():
                raise RetrError(f"cannot write manifest {path}: {path.parent} is not a folder") from None
            raise RetrError(f"manifest {path} already exists") from None
        except OSError as exc:
            raise RetrError(f"cannot write manifest {path}: {exc.strerror or exc}") from None
        if append:
            self._drop_cut_line()

    def _drop_cut_line(self) -> None:
        """Remove a last line cut short by a crash, so a line appended now does not run into it."""
        with open(self.path, "rb+") as fh:
            data = fh.read()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                fh.truncate(end)

    def write(self, *records: dict[str, Any]) -> None:
        for rec in records:
            self.fh.write(json.dumps(rec, sort_keys=True) + "\n")  # ASCII: any file name survives as \u escapes
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def default_manifest(dest: str | Path) -> Path:
    """A new manifest's name: the time, the process, and a random part (a server quarantines more than
    one group a second)."""
    return Path(dest) / f"retr-dedupe-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
