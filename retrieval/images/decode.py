"""Finding image files and decoding them safely into RGB.

Decoding never trusts the file: zero bytes, truncation, a wrong format, a decompression bomb, an extreme
aspect ratio, a file that is not a regular file or an unreadable file each become an ``ImageLoadError``
with a short reason that the catalog records. The work is bounded before it is done: the size is read
from the header and checked before any pixel is decoded or resized.
"""
from __future__ import annotations

import dataclasses
import io
import os
import stat
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from index.errors import RetrError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})
MAX_PIXELS = 100_000_000  # larger images are refused as possible decompression bombs
MAX_ASPECT = 50  # longer side / shorter side; beyond it, resizing the shorter side to a model's makes a giant
MAX_RESIZED_PIXELS = 64_000_000  # an image resized for a model (before its centre crop) stays below this

ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check uses the same limit as ours

NOT_REGULAR = "not a regular file (a FIFO, device, socket or folder); only regular files are read"
NOT_UTF8 = "file name is not valid UTF-8; rename it to index it"
NOT_UTF8_FOLDER = "folder name is not valid UTF-8; rename it to index what it holds"


class ImageLoadError(RetrError):
    """The file is not a usable image; the message is the reason recorded in the catalog."""


@dataclasses.dataclass(frozen=True)
class FileInfo:
    path: str  # absolute
    bytes: int
    mtime: float


@dataclasses.dataclass
class ScanResult:
    files: list[FileInfo]
    errors: list[tuple[str, str]]  # (path, reason) for folders or files that could not be listed


def scan(roots: Iterable[str | Path], *, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> ScanResult:
    """All image files under ``roots`` (recursive, following symlinks, surviving loops and unreadable folders).

    A file named directly is taken whatever its extension, so a wrong-format file is reported, not ignored.
    """
    files: dict[str, FileInfo] = {}
    errors: list[tuple[str, str]] = []
    seen_dirs: set[tuple[int, int]] = set()

    def add(path: str) -> None:
        if not is_utf8(path):
            errors.append((printable_path(path), NOT_UTF8))
            return
        try:
            st = os.stat(path)
        except OSError as exc:
            errors.append((path, f"cannot stat: {exc.strerror or exc}"))
            return
        if stat.S_ISREG(st.st_mode):
            files[path] = FileInfo(path, st.st_size, st.st_mtime)
        else:
            errors.append((path, NOT_REGULAR))

    for root in roots:
        root = os.path.abspath(os.fspath(root))
        existing(root)
        if not os.path.isdir(root):
            add(root)
            continue

        def on_error(exc: OSError) -> None:
            errors.append((exc.filename or root, f"cannot list folder: {exc.strerror or exc}"))

        for folder, dirs, names in os.walk(root, onerror=on_error, followlinks=True):
            try:
                st = os.stat(folder)
            except OSError:
                dirs[:] = []
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:  # a symlink loop or a second link to a folder already walked
                dirs[:] = []
                continue
            seen_dirs.add(key)
            for d in dirs:
                if not is_utf8(d):
                    errors.append((printable_path(os.path.join(folder, d)), NOT_UTF8_FOLDER))
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and is_utf8(d))
            for name in sorted(names):
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                    add(os.path.join(folder, name))
    return ScanResult(sorted(files.values(), key=lambda f: f.path), errors)


def existing(path: str | Path) -> Path:
    """``path`` as a Path; a path that does not exist is an error naming it."""
    if not os.path.exists(path):
        raise RetrError(f"no such file or folder: {printable_path(os.fspath(path))}")
    return Path(path)


def is_utf8(path: str) -> bool:
    """False for a name holding undecodable bytes (Python keeps them as lone surrogates)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_path(path: str) -> str:
    r"""The path as text that can always be printed or stored: undecodable bytes shown as ``\xff`` escapes."""
    if is_utf8(path):
        return path
    try:
        raw = path.encode("utf-8", "surrogateescape")  # the bytes of the name on disk
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def shown(path: str) -> str:
    """``path`` on one printable line: undecodable bytes and control characters escaped (``\\xff``, ``\\n``)."""
    path = printable_path(path)
    return path if path.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)


def read_bytes(path: str | Path) -> bytes:
    """The content of a regular file; a FIFO, device, socket or folder is refused without blocking on it."""
    try:
        # O_NONBLOCK: opening a FIFO never waits for a writer; fstat on the open file leaves no race
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageLoadError(f"unreadable: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ImageLoadError(NOT_REGULAR)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as exc:
        raise ImageLoadError(f"unreadable: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def check_size(width: int, height: int) -> None:
    """Refuse, before decoding, an image too large or too elongated to decode and resize safely."""
    if width * height > MAX_PIXELS:
        raise ImageLoadError(f"image too large ({width}x{height} pixels; limit {MAX_PIXELS:,}): "
                             "possible decompression bomb")
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageLoadError(f"extreme aspect ratio ({width}x{height} pixels; limit {MAX_ASPECT}:1)")


def check_resize(width: int, height: int, shorter_side: int) -> None:
    """Refuse an image whose shorter side resized to ``shorter_side`` would exceed MAX_RESIZED_PIXELS."""
    short, long = sorted((max(width, 1), max(height, 1)))
    resized = shorter_side * shorter_side * long / short
    if resized > MAX_RESIZED_PIXELS:
        raise ImageLoadError(f"too elongated for the model's input ({width}x{height} pixels would resize to "
                             f"{resized / 1e6:,.0f} Mpx; limit {MAX_RESIZED_PIXELS / 1e6:,.0f} Mpx)")


def decode(data: bytes, *, draft_size: int | None = None) -> Image.Image:
    """Decode image bytes into an RGB image (EXIF orientation applied, first frame of animations).

    ``draft_size`` lets JPEG decode at a reduced scale whose shorter side is still >= that size.
    """
    return decode_sized(data, draft_size=draft_size)[0]


def decode_sized(data: bytes, *, draft_size: int | None = None) -> tuple[Image.Image, int, int]:
    """Like ``decode``, also returning the full-resolution (width, height) after EXIF orientation."""
    if not data:
        raise ImageLoadError("empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            if img.format not in FORMATS:
                raise ImageLoadError(f"unsupported image format {img.format}")
            w, h = img.size
            check_size(w, h)
            if draft_size and img.format == "JPEG":
                scale = max(1, min(w, h) // draft_size)
                if scale >= 2:
                    img.draft("RGB", (w // scale, h // scale))
            img.load()
            before = img.size
            img = ImageOps.exif_transpose(img)
            if img.size != before and img.size == (before[1], before[0]):
                w, h = h, w  # rotated by EXIF orientation
            return to_rgb(img), w, h
        except ImageLoadError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageLoadError(_reason(exc)) from exc
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError) as exc:
            raise ImageLoadError(_reason(exc)) from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (unrecognised format)"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"possible decompression bomb: {text[:160]}"
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return f"truncated or corrupt: {text[:160]}"
    return f"cannot decode: {text[:160]}"


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: 16-bit and float scaled, CMYK converted, transparency on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if mode in ("I", "F") and arr.max() <= 255:
            top = 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def check_files(paths: Iterable[str | Path], what: str) -> None:
    """Refuse, before any model is loaded, the first of ``paths`` that is missing or not a regular file."""
    for path in paths:
        name = printable_path(os.fspath(path))
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise RetrError(f"{what} not found: {name}") from None
        except OSError as exc:
            raise RetrError(f"cannot read {what} {name}: unreadable: {exc.strerror or exc}") from None
        if not stat.S_ISREG(mode):
            raise RetrError(f"cannot read {what} {name}: {NOT_REGULAR}")


def load_image(path: str | Path, *, draft_size: int | None = None) -> Image.Image:
    """Read and decode one image file into RGB, or raise ImageLoadError naming the file."""
    try:
        return decode(read_bytes(path), draft_size=draft_size)
    except ImageLoadError as exc:
        raise ImageLoadError(f"{printable_path(os.fspath(path))}: {exc}") from exc


def load_queries(images: Sequence[str | Path]) -> list[Image.Image]:
    """The query images, decoded; a missing or unreadable one is a one-line error (no model needed)."""
    check_files(images, "query image")
    loaded = []
    for path in images:
        try:
            loaded.append(load_image(path))
        except ImageLoadError as exc:
            raise RetrError(f"cannot read query image {exc}") from exc
    return loaded
