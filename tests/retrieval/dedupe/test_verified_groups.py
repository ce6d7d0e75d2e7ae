"""The verified pipeline on files: originals kept over edited copies, flat images never paired or moved."""
from __future__ import annotations

import os

from PIL import Image, ImageDraw, ImageEnhance

from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.run import Action, dedupe_paths
from tests.conftest import PHOTOS


def _library(root):
    root.mkdir()
    orig = Image.open(PHOTOS / "chelsea.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS 5D"
    paths = {"original": root / "chelsea.jpg", "brightened": root / "chelsea_bright.jpg",
             "watermarked": root / "chelsea_wm.png", "resaved": root / "chelsea_resaved.jpg",
             "purple": root / "purple.png", "grey": root / "grey.jpg", "coffee": root / "coffee.jpg"}
    orig.save(paths["original"], quality=80, exif=exif)
    ImageEnhance.Brightness(orig).enhance(1.2).save(paths["brightened"], quality=98)  # more bytes, same pixels
    wm = orig.copy()
    ImageDraw.Draw(wm).text((20, 20), "(c) watermark", fill=(255, 255, 255))
    wm.save(paths["watermarked"])  # PNG: many more bytes than the original
    orig.save(paths["resaved"], quality=95)  # same pixels, more bytes, no camera EXIF
    Image.new("RGB", (200, 200), (120, 40, 160)).save(paths["purple"])
    Image.new("RGB", (300, 300), (128, 128, 128)).save(paths["grey"])
    Image.open(PHOTOS / "coffee.jpg").save(paths["coffee"])
    old = os.stat(paths["original"]).st_mtime - 3600
    os.utime(paths["original"], (old, old))
    return paths


def test_the_original_is_kept_and_flat_images_are_reported_not_paired(tmp_path):
    p = _library(tmp_path / "lib")
    result, _ = dedupe_paths([tmp_path / "lib"], DedupeOptions(), workers=2)
    (group,) = result.groups
    assert group.keep.path == str(p["original"])  # not the bigger brightened, watermarked or resaved files
    assert {d.item.path for d in group.duplicates} == {str(p[k]) for k in ("brightened", "watermarked", "resaved")}
    assert all(d.reason == "verified" and d.inliers >= 10 for d in group.duplicates)
    # a solid purple and a solid grey image hash alike (distance 0) but are never paired
    assert {x.item.path for x in result.low_info} == {str(p["purple"]), str(p["grey"])}
    assert result.to_json()["low_information"][0]["reason"].startswith(("near-uniform", "flat"))


def test_largest_keeps_the_biggest_file_and_flat_images_are_never_moved(tmp_path):
    p = _library(tmp_path / "lib")
    result, done = dedupe_paths([tmp_path / "lib"], DedupeOptions(keep="largest"),
                                Action(move_to=str(tmp_path / "q")), workers=1)
    assert result.groups[0].keep.path == str(p["watermarked"])
    assert p["purple"].exists() and p["grey"].exists() and p["original"].exists() is False
    assert len(done.done) == 3


def test_no_verify_pairs_by_hash_alone(tmp_path):
    p = _library(tmp_path / "lib")
    result, _ = dedupe_paths([tmp_path / "lib"], DedupeOptions(verify=False), workers=1)
    joined = {d.item.path for g in result.groups for d in g.duplicates} | {g.keep.path for g in result.groups}
    assert {str(p["purple"]), str(p["grey"])} <= joined  # what verification prevents
    assert result.low_info == []
