"""Finding image files and decoding them safely into RGB.

Decoding never trusts the file: zero bytes, truncation, a wrong format, a decompression bomb, an extreme
aspect ratio, a file that is not a regular file or an unreadable file each become an ``ImageLoadError``
with a short reason that the catalog records. The work is bounded before it is done: the size is read
from the header and checked before any pixel is decoded or resized.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import stat
import threading
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from index.errors import RetrError, TooLarge

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


class DecodeTooLarge(ImageLoadError, TooLarge):
    """Decoding the picture alone would take more memory than the decoding budget."""


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


def decode(data: bytes, *, draft_size: int | None = None, reduce: bool = False) -> Image.Image:
    """Decode image bytes into an RGB image (EXIF orientation applied, first frame of animations).

    ``draft_size`` lets JPEG decode at a reduced scale whose shorter side is still >= that size; with
    ``reduce``, any other format is shrunk as well (``Image.reduce``, by a whole factor) right after decoding.
    """
    return decode_sized(data, draft_size=draft_size, reduce=reduce)[0]


class DecodeBudget:
    """Caps the bytes of pictures being decoded at once in this process: a decode reserves what it will
    hold at its peak (estimated from the header, before any pixel is decoded) and waits while others hold
    the rest; one that would need more than the whole budget is refused. N concurrent decodes can never
    take more memory than the budget."""

    def __init__(self, capacity: int):
        self.capacity, self.used = capacity, 0
        self._cond = threading.Condition()

    def resize(self, capacity: int) -> None:
        with self._cond:
            self.capacity = capacity
            self._cond.notify_all()

    @contextlib.contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        with self._cond:
            if nbytes > self.capacity:
                raise DecodeTooLarge(f"too large to decode in memory (needs {nbytes / 2**20:,.0f} MiB; the "
                                     f"decoding budget is {self.capacity / 2**20:,.0f} MiB)")
            while self.used + nbytes > self.capacity:
                self._cond.wait()
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()


DECODE_BUDGET = DecodeBudget(int(float(os.environ.get("RETR_DECODE_MEMORY_MB", 2048)) * 2**20))

# bytes a pixel takes in Pillow's memory (RGB is stored in 4), and what turning a full-size picture of the
# mode into RGB adds at its peak (to_rgb: 16-bit through a float row block; alpha composited on white)
_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_TO_RGB = {"RGB": 0, "1": 4, "L": 4, "P": 16, "I;16": 9, "I;16L": 9, "I;16B": 9, "I;16N": 9, "I": 9, "F": 9,
           "RGBA": 16, "LA": 16, "PA": 16, "RGBa": 16, "La": 16}
# modes Image.reduce cannot shrink (palettes, 1-bit, 16-bit) become these first
_REDUCIBLE = {"1": "L", "P": "RGBA", "PA": "RGBA", "I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I"}


def _reduce_factor(width: int, height: int, side: int | None) -> int:
    """The whole factor that shrinks the shorter side the most while keeping it >= ``side``."""
    return max(1, min(width, height) // side) if side else 1


def _decode_cost(img: Image.Image, factor: int) -> int:
    """Peak bytes of decoding ``img`` (opened, drafted, not loaded) and shrinking it by ``factor``."""
    pixels = img.width * img.height
    cost = pixels * _BYTES.get(img.mode, 4)
    if factor >= 2:  # Image.reduce needs some modes converted first (1-bit to 8, palette to RGBA, 16-bit to 32)
        converted = {"1": 1}.get(img.mode, 4) if img.mode in _REDUCIBLE else 0
        return cost + pixels * converted + 16 * pixels // (factor * factor)
    # full size: to RGB, and a turned copy should EXIF say so (not read here: for a PNG it decodes the file)
    return 2 * cost + pixels * _TO_RGB.get(img.mode, 4)


def _shrunk(img: Image.Image, factor: int) -> tuple[Image.Image, str]:
    """``img`` reduced by ``factor`` (box filter), and the mode it was decoded in (16-bit keeps its scale)."""
    mode = img.mode
    if factor < 2:
        return img, mode
    if mode in _REDUCIBLE:
        img = img.convert("RGBA" if mode in ("P", "PA") else _REDUCIBLE[mode])
    return img.reduce(factor), mode


def decode_sized(data: bytes, *, draft_size: int | None = None, reduce: bool = False,
                 region: tuple[float, float, float, float] | None = None) -> tuple[Image.Image, int, int]:
    """Like ``decode``, also returning the full-resolution (width, height) after EXIF orientation.

    With ``region`` (a box in full-resolution pixels), the scale is chosen so that the box's shorter side,
    not the picture's, stays >= ``draft_size``. The decode holds its share of ``DECODE_BUDGET`` until the
    picture is at its final size.
    """
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
            target = draft_size
            if draft_size and region is not None:  # the box must keep the model's size once shrunk
                bw, bh = max(1.0, region[2] - region[0]), max(1.0, region[3] - region[1])
                target = int(draft_size * min(w, h) / min(bw, bh, min(w, h)))
            if target and img.format == "JPEG":
                scale = max(1, min(w, h) // target)
                if scale >= 2:
                    img.draft("RGB", (w // scale, h // scale))
            factor = _reduce_factor(*img.size, target) if reduce else 1
            with DECODE_BUDGET.reserve(_decode_cost(img, factor)):
                img.load()
                img, mode = _shrunk(img, factor)
                before = img.size
                img = ImageOps.exif_transpose(img)
                if img.size != before and img.size == (before[1], before[0]):
                    w, h = h, w  # rotated by EXIF orientation
                return to_rgb(img, decoded_as=mode), w, h
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
        found = re.search(r"\((\d+) pixels\)", text)
        size = f"{int(found.group(1)):,} pixels; " if found else ""
        return f"image too large ({size}limit {MAX_PIXELS:,}): possible decompression bomb"
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return f"truncated or corrupt: {text[:160]}"
    return f"cannot decode: {text[:160]}"


def to_rgb(img: Image.Image, *, decoded_as: str | None = None) -> Image.Image:
    """Any PIL mode to 8-bit RGB: 16-bit and float scaled, CMYK converted, transparency on white.
    ``decoded_as``: the mode the file was decoded in, when ``img`` was converted since (16-bit keeps
    its 0-65535 scale after becoming 32-bit to be shrunk)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img)
        source = decoded_as or mode
        top = 65535.0 if source.startswith("I;16") else max(float(arr.max()), 1.0)
        if source in ("I", "F") and arr.max() <= 255:
            top = 255.0
        out = np.empty(arr.shape, dtype=np.uint8)
        rows = max(1, (1 << 22) // max(1, arr.shape[1]))  # a block of rows at a time: float64 for 4 Mpx at most
        for r in range(0, arr.shape[0], rows):
            out[r:r + rows] = np.clip(arr[r:r + rows] / top * 255.0 + 0.5, 0, 255)
        return Image.fromarray(out, "L").convert("RGB")
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


def load_image(path: str | Path, *, draft_size: int | None = None, reduce: bool = False) -> Image.Image:
    """Read and decode one image file into RGB, or raise ImageLoadError naming the file."""
    try:
        return decode(read_bytes(path), draft_size=draft_size, reduce=reduce)
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
