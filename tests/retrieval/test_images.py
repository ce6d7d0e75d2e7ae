import os

import numpy as np
import pytest
from PIL import Image

from retrieval.images import ImageLoadError, decode_sized, load_image, read_bytes, scan
from tests.conftest import ODD, PHOTOS

BAD = {"empty.jpg": "empty file", "truncated.jpg": "truncated", "corrupt.jpg": "not an image",
       "notes.png": "not an image", "bomb.png": "decompression bomb"}


@pytest.mark.parametrize("name,reason", sorted(BAD.items()))
def test_bad_files_raise_with_a_reason(name, reason):
    with pytest.raises(ImageLoadError, match=reason):
        load_image(ODD / name)


@pytest.mark.parametrize("name", ["cmyk.jpg", "gray16.png", "palette.png", "gray_alpha.png", "anim.gif",
                                  "image.webp", "image.bmp", "image.tiff"])
def test_odd_formats_decode_to_rgb(name):
    img = load_image(ODD / name)
    assert img.mode == "RGB" and img.size == (96, 64)


def test_sixteen_bit_is_scaled_not_clipped():
    img = np.asarray(load_image(ODD / "gray16.png"))[..., 0].astype(int)
    ref = np.asarray(load_image(ODD / "image.bmp").convert("L")).astype(int)
    assert np.abs(img - ref).mean() < 2  # 16-bit values scaled to 8 bits, not saturated


def test_exif_orientation_is_applied_and_size_recorded_upright():
    img, w, h = decode_sized(read_bytes(ODD / "rotated.jpg"))
    assert img.size == (64, 96) and (w, h) == (64, 96)


def test_transparency_is_composited_on_white():
    arr = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    img = load_image(_save(Image.fromarray(arr, "RGBA")))
    assert np.asarray(img).min() == 255


def _save(img, name="t.png"):
    import tempfile
    path = os.path.join(tempfile.mkdtemp(), name)
    img.save(path)
    return path


def test_jpeg_draft_decodes_smaller_but_reports_full_size():
    img, w, h = decode_sized(read_bytes(PHOTOS / "astronaut.jpg"), draft_size=96)
    assert (w, h) == (384, 384) and 96 <= min(img.size) < 384


def test_scan_recurses_survives_symlink_loops_and_unreadable_folders(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "x.JPG")
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "b" / "y.png")
    (tmp_path / "a" / "b" / "z.txt").write_text("no")
    (tmp_path / "a" / "b" / "loop").symlink_to(tmp_path / "a")
    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", scandir)
    result = scan([tmp_path])
    assert [os.path.relpath(f.path, tmp_path) for f in result.files] == ["a/b/y.png", "a/x.JPG"]
    assert len(result.errors) == 1 and "locked" in result.errors[0][0]


def test_scan_takes_a_named_file_whatever_its_extension(tmp_path):
    (tmp_path / "photo.dat").write_bytes(b"x")
    assert [f.path for f in scan([tmp_path / "photo.dat"]).files] == [str(tmp_path / "photo.dat")]
