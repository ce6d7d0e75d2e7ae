import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from retrieval.images.preprocess import Preprocess
from retrieval.images.decode import (MAX_PIXELS, NOT_REGULAR, ImageLoadError, check_resize, decode_sized, load_image,
                              printable_path, read_bytes, scan)
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


def _png_header(width: int, height: int) -> bytes:
    """A grayscale PNG that declares its size but holds almost no pixels (nothing big is ever decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_pillow_refuses_at_our_pixel_limit_not_its_own():
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS == 100_000_000
    with pytest.raises(ImageLoadError, match="truncated"):  # 95 Mpx: above Pillow's default 89 Mpx, within ours
        decode_sized(_png_header(10_000, 9_500))
    bomb = r"too large \(100,010,000 pixels; limit 100,000,000\): possible decompression bomb"
    with pytest.raises(ImageLoadError, match=bomb):
        decode_sized(_png_header(10_001, 10_000))


@pytest.mark.parametrize("size", [(1, 100_000), (100_000, 1), (2, 101)])
def test_extreme_aspect_ratios_are_refused_before_decoding(size):
    with pytest.raises(ImageLoadError, match=f"extreme aspect ratio \\({size[0]}x{size[1]} pixels; limit 50:1\\)"):
        decode_sized(_png_header(*size))


def test_a_long_panorama_within_the_limit_decodes():
    img = load_image(_save(Image.new("RGB", (2000, 40))))
    assert img.size == (2000, 40)


def test_an_image_that_would_resize_to_a_giant_is_refused_before_resizing(monkeypatch):
    check_resize(40, 1_600, 224)  # 224 x 8,960: fine
    with pytest.raises(ImageLoadError, match="would resize to 168 Mpx; limit 64 Mpx"):
        check_resize(40, 1_600, 2_048)  # 2,048 x 81,920

    def never(img, *args, **kwargs):
        raise AssertionError(f"resized {img.size}")
    prep = Preprocess.from_data_config({"input_size": [3, 2_048, 2_048], "crop_pct": 1.0, "mean": [0.5] * 3,
                                        "std": [0.5] * 3})
    monkeypatch.setattr(Image.Image, "resize", never)
    with pytest.raises(ImageLoadError, match="too elongated for the model's input"):
        prep.to_uint8(Image.new("RGB", (40, 1_600)))


@pytest.mark.timeout(60)
def test_read_bytes_refuses_a_fifo_and_a_folder_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo.jpg")
    for path in (tmp_path / "fifo.jpg", tmp_path):
        with pytest.raises(ImageLoadError, match="^not a regular file"):
            read_bytes(path)
    with pytest.raises(ImageLoadError, match="^unreadable: No such file or directory"):
        read_bytes(tmp_path / "missing.jpg")


@pytest.mark.timeout(60)
def test_scan_reports_a_named_fifo_and_one_among_images(tmp_path):
    os.mkfifo(tmp_path / "fifo.jpg")
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    assert scan([tmp_path / "fifo.jpg"]).errors == [(str(tmp_path / "fifo.jpg"), NOT_REGULAR)]
    result = scan([tmp_path])
    assert [f.path for f in result.files] == [str(tmp_path / "x.png")]
    assert result.errors == [(str(tmp_path / "fifo.jpg"), NOT_REGULAR)]


def test_scan_skips_non_utf8_names_with_the_bytes_escaped(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "good.png")
    raw = os.fsencode(tmp_path)
    os.close(os.open(raw + b"/bad\xff\xfe.jpg", os.O_WRONLY | os.O_CREAT, 0o644))
    os.mkdir(raw + b"/album\xe9")
    Image.new("RGB", (4, 4)).save(os.path.join(os.fsdecode(raw + b"/album\xe9"), "inside.png"))
    result = scan([tmp_path])
    assert [f.path for f in result.files] == [str(tmp_path / "good.png")]
    assert result.errors == [
        (f"{tmp_path}/album\\xe9", "folder name is not valid UTF-8; rename it to index what it holds"),
        (f"{tmp_path}/bad\\xff\\xfe.jpg", "file name is not valid UTF-8; rename it to index it")]
    for path, _ in result.errors:
        path.encode("utf-8")  # printable: no lone surrogate left


def test_printable_path():
    assert printable_path("caf\u00e9.jpg") == "caf\u00e9.jpg"
    assert printable_path(os.fsdecode(b"bad\xff.jpg")) == "bad\\xff.jpg"
    assert printable_path("odd\ud800.jpg") == "odd\\ud800.jpg"


# -- decoding at the model's scale, under a memory budget -------------------------------------------------

def _png(img) -> bytes:
    import io
    out = io.BytesIO()
    img.save(out, "TIFF" if img.mode == "I" else "PNG")  # PNG holds no 32-bit integers
    return out.getvalue()


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I"])
def test_reduce_keeps_the_shorter_side_at_least_the_model_side(mode):
    from PIL import Image

    from retrieval.images.decode import decode_sized
    img = Image.new("I;16", (1300, 700), 40000) if mode == "I;16" else Image.new("RGB", (1300, 700), (200, 30, 90)).convert(mode)
    picture, w, h = decode_sized(_png(img), draft_size=224, reduce=True)
    assert (w, h) == (1300, 700) and picture.mode == "RGB"
    assert 224 <= min(picture.size) < 2 * 224 and picture.size == (1300 // 3 + (1300 % 3 > 0), 700 // 3 + (700 % 3 > 0))
    full = decode_sized(_png(img))[0]
    assert np.abs(np.asarray(picture, dtype=int).mean((0, 1)) - np.asarray(full, dtype=int).mean((0, 1))).max() <= 1


def test_reduce_of_a_palette_with_transparency_composites_on_white():
    from PIL import Image

    from retrieval.images.decode import decode_sized
    img = Image.new("P", (900, 900), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 450, 900))
    img.info["transparency"] = 1
    picture = np.asarray(decode_sized(_png(img), draft_size=224, reduce=True)[0])
    assert tuple(picture[10, 10]) == (255, 255, 255) and tuple(picture[10, -10]) == (255, 0, 0)


def test_sixteen_bit_keeps_its_scale_when_reduced():
    from PIL import Image

    from retrieval.images.decode import decode_sized
    img = Image.new("I;16", (1000, 1000), 32768)
    assert np.asarray(decode_sized(_png(img), draft_size=224, reduce=True)[0])[5, 5, 0] == 128


def test_a_region_keeps_the_model_side_once_shrunk():
    from PIL import Image

    from retrieval.images.decode import decode_sized
    img = Image.new("RGB", (4000, 3000), (10, 20, 30))
    picture, w, h = decode_sized(_png(img), draft_size=200, reduce=True, region=(0, 0, 1000, 800))
    factor = 4000 / picture.width
    assert 800 / factor >= 200 and factor >= 3  # the box's shorter side, not the picture's, sets the scale


def test_the_budget_serialises_decodes_and_refuses_one_over_it():
    import threading
    import time

    from retrieval.images.decode import DecodeBudget, DecodeTooLarge
    budget, inside, most = DecodeBudget(100), [0], [0]
    lock = threading.Lock()

    def work():
        with budget.reserve(60):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most[0] == 1 and budget.used == 0
    with pytest.raises(DecodeTooLarge, match="needs 0 MiB; the decoding budget is 0 MiB"):
        with budget.reserve(101):
            pass
    assert budget.used == 0


def test_the_bomb_message_names_the_real_limit():
    from retrieval.images.decode import ImageLoadError, load_image
    with pytest.raises(ImageLoadError, match=r"limit 100,000,000\): possible decompression bomb"):
        load_image(ODD / "bomb.png")
