"""Undo trusts no manifest: every hostile or malformed line is refused before anything moves (a folder's
dedupe, with no catalog); with a catalog, only the moves it recorded itself go back."""
import json
import os
import shutil

import pytest

from index.catalog.database import Catalog
from index.errors import RetrError
from retrieval.dedupe.actions import CatalogLink, move_duplicates, undo
from tests.retrieval.dedupe.photos import digest, exact_group

CONTENT = b"photo bytes " * 100


@pytest.fixture
def moved(tmp_path):
    """lib/keep.jpg kept; lib/x/dup1.jpg and lib/dup2.jpg moved to q/ with manifest m.jsonl; a catalog row
    for the kept file; and an unrelated file the attacker is after."""
    lib = tmp_path / "lib"
    (lib / "x").mkdir(parents=True)
    keep = lib / "keep.jpg"
    keep.write_bytes(CONTENT)
    dups = [lib / "x" / "dup1.jpg", lib / "dup2.jpg"]
    for d in dups:
        shutil.copyfile(keep, d)
    (tmp_path / "stolen").mkdir()
    (tmp_path / "stolen" / "important.conf").write_bytes(b"secret")
    report = move_duplicates([exact_group(keep, *dups)], tmp_path / "q", manifest=tmp_path / "m.jsonl")
    assert [src for src, _ in report.done] == [str(d) for d in dups]
    cat = Catalog.for_index(tmp_path / "idx")
    cat.write_images([{"path": str(keep), "sha256": digest(keep), "bytes": len(CONTENT), "status": "ok"}])
    return tmp_path, CatalogLink(cat)


def _rewrite(manifest, change) -> None:
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    change(records[0], [r for r in records if r.get("op") == "plan"])
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))


def _row(path, sha256, **extra):
    return {"path": str(path), "sha256": sha256, "bytes": 1, "width": 1, "height": 1, "mtime": 0.0,
            "status": "ok", "error": None, **extra}


def _dotdot_dst(tmp):
    def change(header, plans):
        plans[-1]["dst"] = header["dest"] + "/../stolen/important.conf"
    return change


def _dst_elsewhere(tmp):
    def change(header, plans):
        plans[-1]["dst"] = str(tmp / "stolen" / "important.conf")
        plans[-1]["src"] = str(tmp / "elsewhere" / "important.conf")
    return change


def _src_of_another_file(tmp):
    def change(header, plans):
        plans[-1]["src"] = str(tmp / ".bashrc")
    return change


def _row_for_another_path(tmp):
    def change(header, plans):  # would overwrite the kept image's live row, its sha256 zeroed
        plans[-1]["row"] = _row(tmp / "lib" / "keep.jpg", "0" * 64)
    return change


def _missing_key(tmp):
    def change(header, plans):
        del plans[-1]["sha256"]
    return change


def _wrong_type(tmp):
    def change(header, plans):
        plans[-1]["src"] = 5
    return change


def _wrong_row_type(tmp):
    def change(header, plans):
        plans[-1]["row"] = _row(plans[-1]["src"], plans[-1]["sha256"], bytes="1200")
    return change


def _unknown_row_key(tmp):
    def change(header, plans):
        plans[-1]["row"] = _row(plans[-1]["src"], plans[-1]["sha256"], id=1)
    return change


def _header_dest_elsewhere(tmp):
    def change(header, plans):
        header["dest"] = str(tmp / "stolen")
    return change


@pytest.mark.parametrize("hostile,message", [
    (_dotdot_dst, "'dst' must be an absolute, normalised path"),
    (_dst_elsewhere, "is not inside the quarantine folder"),
    (_src_of_another_file, "is not where"),
    (_row_for_another_path, "row does not describe src and its sha256"),
    (_missing_key, "missing key(s) 'sha256'"),
    (_wrong_type, "'src' must be an absolute, normalised path"),
    (_wrong_row_type, "row: 'bytes' must be an integer or null"),
    (_unknown_row_key, "row: unknown key(s) 'id'"),
    (_header_dest_elsewhere, "is not inside the quarantine folder"),
])
def test_a_hostile_line_is_refused_before_anything_moves(moved, hostile, message):
    tmp, link = moved
    manifest = tmp / "m.jsonl"
    _rewrite(manifest, hostile(tmp))
    with pytest.raises(RetrError) as err:
        undo(manifest)
    assert message in str(err.value) and "nothing was moved" in str(err.value)
    assert "\n" not in str(err.value)
    _assert_nothing_moved(tmp, link)


def test_non_utf8_line_is_refused(moved):
    tmp, link = moved
    manifest = tmp / "m.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    lines.insert(2, b'{"op": "moved", "src": "\xff\xfe"}\n')
    manifest.write_bytes(b"".join(lines))
    with pytest.raises(RetrError, match="line 3 is not UTF-8; nothing was moved"):
        undo(manifest)
    _assert_nothing_moved(tmp, link)


def _assert_nothing_moved(tmp, link):
    q, lib = tmp / "q", tmp / "lib"
    assert (q / "x" / "dup1.jpg").read_bytes() == CONTENT and (q / "dup2.jpg").read_bytes() == CONTENT
    assert not (lib / "x" / "dup1.jpg").exists() and not (lib / "dup2.jpg").exists()
    assert (tmp / "stolen" / "important.conf").read_bytes() == b"secret"
    assert not (tmp / "elsewhere").exists() and not (tmp / ".bashrc").exists()
    (row,) = link.catalog.image_rows().values()
    assert row.sha256 == digest(lib / "keep.jpg")


def _plant_file_link(tmp):
    """q/dup2.jpg replaced by a symlink to a file outside (with the recorded content)."""
    (tmp / "outside.jpg").write_bytes(CONTENT)
    (tmp / "q" / "dup2.jpg").unlink()
    (tmp / "q" / "dup2.jpg").symlink_to(tmp / "outside.jpg")
    return tmp / "lib" / "dup2.jpg", tmp / "outside.jpg", "not a plain file in the quarantine folder"


def _plant_folder_link(tmp):
    """q/x replaced by a symlink to a folder outside holding a file of the recorded name and content."""
    (tmp / "outside").mkdir()
    (tmp / "outside" / "dup1.jpg").write_bytes(CONTENT)
    shutil.rmtree(tmp / "q" / "x")
    (tmp / "q" / "x").symlink_to(tmp / "outside")
    return tmp / "lib" / "x" / "dup1.jpg", tmp / "outside" / "dup1.jpg", "not a plain file in the quarantine folder"


def _other_content(tmp):
    (tmp / "q" / "dup2.jpg").write_bytes(b"planted")
    return tmp / "lib" / "dup2.jpg", tmp / "q" / "dup2.jpg", "sha256 differs"


@pytest.mark.parametrize("tamper", [_plant_file_link, _plant_folder_link, _other_content])
def test_a_tampered_quarantine_file_stays_where_it_is(moved, tamper):
    tmp, link = moved
    src, planted, reason = tamper(tmp)
    before = planted.read_bytes()
    report = undo(tmp / "m.jsonl")
    assert [(p, reason in r) for p, r in report.skipped] == [(str(src), True)]
    assert len(report.done) == 1  # the other file, untouched, goes back
    assert not os.path.lexists(src) and planted.read_bytes() == before


def test_a_quarantine_folder_behind_a_symlink_is_refused(moved):
    tmp, link = moved
    (tmp / "q").rename(tmp / "q-real")
    (tmp / "q").symlink_to(tmp / "q-real")
    with pytest.raises(RetrError, match="reached through a symbolic link; nothing was moved"):
        undo(tmp / "m.jsonl")
    assert not (tmp / "lib" / "dup2.jpg").exists() and (tmp / "q-real" / "dup2.jpg").exists()


def test_with_a_catalog_a_manifest_it_did_not_record_moves_nothing_back(moved):
    from index.errors import NotFound
    tmp, link = moved
    manifest = tmp / "m.jsonl"

    def change(header, plans):  # rows a forger would like inserted
        for plan in plans:
            plan["row"] = _row(plan["src"], plan["sha256"])
    _rewrite(manifest, change)
    with pytest.raises(NotFound, match="is in the quarantine by this index's catalog"):
        undo(manifest, catalog=link)
    _assert_nothing_moved(tmp, link)


def test_a_line_cut_short_by_a_crash_is_dropped_before_undo_appends(moved):
    tmp, link = moved
    manifest = tmp / "m.jsonl"
    with open(manifest, "a") as fh:
        fh.write('{"op": "restored", "src": "/li')  # undo killed while writing its line
    assert len(undo(manifest).done) == 2
    assert manifest.read_text().endswith("\n")
    assert undo(manifest).done == []  # and the manifest still reads

