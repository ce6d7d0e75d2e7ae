"""Regenerates the committed test fixtures (run once by hand; the outputs are committed).

photos/: small JPEG copies of freely licensed photos bundled with scikit-image and scikit-learn
(sources and licences in photos/SOURCES.md). odd/: files that exercise the safe loader.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
PHOTOS = {  # name: (loader, source, licence)
    "astronaut": ("skimage", "NASA Great Images (scikit-image data.astronaut)", "public domain"),
    "coffee": ("skimage", "Rachel Michetti (scikit-image data.coffee)", "CC0"),
    "chelsea": ("skimage", "Stefan van der Walt (scikit-image data.chelsea)", "CC0"),
    "rocket": ("skimage", "SpaceX, DSCOVR launch (scikit-image data.rocket)", "public domain"),
    "hubble_deep_field": ("skimage", "NASA (scikit-image data.hubble_deep_field)", "public domain"),
    "brick": ("skimage", "CC0Textures Bricks25 (scikit-image data.brick)", "CC0"),
    "gravel": ("skimage", "CC0Textures Gravel04 (scikit-image data.gravel)", "CC0"),
    "retina": ("skimage", "Mikael Häggström (scikit-image data.retina)", "CC0"),
    "camera": ("skimage", "Lav Varshney (scikit-image data.camera)", "CC0"),
    "coins": ("skimage", "Brooklyn Museum Greek coins (scikit-image data.coins)", "no known copyright restrictions"),
    "china": ("sklearn", "danielbuechele on Flickr (scikit-learn load_sample_images)", "CC BY 2.0"),
    "flower": ("sklearn", "vultilion on Flickr (scikit-learn load_sample_images)", "CC BY 2.0"),
}


def photo(name: str) -> Image.Image:
    kind = PHOTOS[name][0]
    if kind == "skimage":
        import skimage.data
        arr = getattr(skimage.data, name)()
    else:
        from sklearn.datasets import load_sample_image
        arr = load_sample_image(f"{name}.jpg")
    img = Image.fromarray(np.asarray(arr)).convert("RGB")
    img.thumbnail((384, 384), Image.Resampling.LANCZOS)
    return img


def png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb for the loader)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + \
        chunk(b"IEND", b"")


def main() -> None:
    photos = HERE / "photos"
    photos.mkdir(exist_ok=True)
    lines = ["# Sample photos", "", "Downscaled to at most 384 px for the tests and `make demo`.", "",
             "| file | source | licence |", "|---|---|---|"]
    for name, (_, source, licence) in PHOTOS.items():
        photo(name).save(photos / f"{name}.jpg", quality=88)
        lines.append(f"| {name}.jpg | {source} | {licence} |")
    (photos / "SOURCES.md").write_text("\n".join(lines) + "\n")

    odd = HERE / "odd"
    odd.mkdir(exist_ok=True)
    base = photo("chelsea").resize((96, 64))
    buf = io.BytesIO()
    base.save(buf, "JPEG", quality=90)
    jpeg = buf.getvalue()
    (odd / "empty.jpg").write_bytes(b"")
    (odd / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (odd / "corrupt.jpg").write_bytes(jpeg[:20] + bytes(np.random.default_rng(0).integers(0, 256, 400,
                                                                                          dtype=np.uint8)))
    (odd / "notes.png").write_text("this is not an image\n")
    (odd / "bomb.png").write_bytes(png_with_size(30000, 30000))
    base.convert("CMYK").save(odd / "cmyk.jpg", quality=90)
    gray16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(gray16).save(odd / "gray16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    base.save(odd / "rotated.jpg", quality=90, exif=exif.tobytes())
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.info["transparency"] = 0
    pal.save(odd / "palette.png", transparency=0)
    base.convert("LA").save(odd / "gray_alpha.png")
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(odd / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    base.save(odd / "image.webp", quality=90)
    base.save(odd / "image.bmp")
    base.save(odd / "image.tiff")


if __name__ == "__main__":
    main()
