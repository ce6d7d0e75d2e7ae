"""Perceptual hashers: a small registry wrapping imagehash (never reimplementing a hash).

Each hasher knows its width in bits for a ``hash_size`` and the smallest image it needs, so JPEGs can be
decoded at reduced size (PIL draft) when the hash resizes the image down anyway.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from index.errors import RetrError
from retrieval.registry import Registry

if TYPE_CHECKING:
    import imagehash
    import numpy as np
    from PIL import Image

# imagehash (with scipy and numpy behind it) is imported on first use, so the CLI's help text can read
# the hashers' names and default radii without it
HashFn = Callable[["Image.Image", int], "imagehash.ImageHash"]


@dataclasses.dataclass(frozen=True)
class Hasher:
    """One imagehash function and its defaults; a subclass overrides what differs (width, size rule).

    ``default_size``: the hash_size (for colorhash: binbits) used when none is given.
    ``default_threshold``: Hamming radius for near-duplicates at the default size (benchmarks/dedupe_quality.py).
    ``draft_factor``: the hash resizes the image to about ``draft_factor * hash_size`` pixels first, so a JPEG
    may be decoded at any scale whose shorter side keeps a margin over that; None when the hash depends on the
    full-resolution pixels.
    """

    name: str
    compute: HashFn  # (image, checked size) -> imagehash.ImageHash
    default_size: int
    default_threshold: int
    draft_factor: int | None
    description: str
    grey: bool = True  # the hash looks at the grey image only (colorhash: hue and saturation)

    def width(self, size: int) -> int:
        """Bits of a hash of ``size`` (a size x size bit matrix unless a subclass says otherwise)."""
        return size * size

    def bits(self, hash_size: int | None = None) -> int:
        """Width of the hash in bits."""
        return self.width(self.size(hash_size))

    def nbytes(self, hash_size: int | None = None) -> int:
        """Bytes of the packed hash (bits rounded up to whole bytes; padding bits are zero)."""
        return (self.bits(hash_size) + 7) // 8

    def size(self, hash_size: int | None) -> int:
        size = self.default_size if hash_size is None else int(hash_size)
        if size < 2:
            raise RetrError(f"--hash-size must be at least 2 for {self.name}, got {size}")
        return size

    def threshold(self, hash_size: int | None = None) -> int:
        """The default Hamming radius, scaled with the hash width when the size is not the default."""
        bits = self.bits(hash_size)
        base_bits = self.bits(self.default_size)
        return int(round(self.default_threshold * bits / base_bits))

    def draft_size(self, hash_size: int | None = None) -> int | None:
        """Shorter side a JPEG may be decoded down to (4x margin over what the hash keeps), or None."""
        if self.draft_factor is None:
            return None
        return max(64, 4 * self.draft_factor * self.size(hash_size))

    def hash_image(self, image: Image.Image, hash_size: int | None = None) -> imagehash.ImageHash:
        return self.compute(image, self.size(hash_size))

    def packed(self, image: Image.Image, hash_size: int | None = None) -> bytes:
        """The hash as packed bits (numpy.packbits, row-major), the form stored and searched."""
        return pack(self.hash_image(image, hash_size))


class WHash(Hasher):
    """whash: the Haar wavelet needs a power-of-two size."""

    def size(self, hash_size: int | None) -> int:
        size = super().size(hash_size)
        if size & (size - 1):
            raise RetrError(f"whash needs a power-of-two --hash-size, got {size}")
        return size


class ColorHash(Hasher):
    """colorhash: 14 bins (hue and saturation) of ``size`` bits each, not a size x size matrix."""

    def width(self, size: int) -> int:
        return 14 * size


def _imagehash() -> Any:
    import imagehash
    return imagehash


def pack(h: imagehash.ImageHash) -> bytes:
    import numpy as np
    return np.packbits(np.asarray(h.hash, dtype=bool).ravel()).tobytes()


def unpack(bits: bytes, nbits: int) -> np.ndarray:
    """Packed bytes -> bool array of ``nbits`` (inverse of ``pack`` up to the hash's shape)."""
    import numpy as np
    return np.unpackbits(np.frombuffer(bits, dtype=np.uint8))[:nbits].astype(bool)


HASHERS: Registry[Hasher] = Registry("--hash")
# Default radii come from benchmarks/dedupe_quality.py (see the README's dedupe section for their P/R).
for _hasher in (
        Hasher("phash", lambda im, s: _imagehash().phash(im, hash_size=s), 8, 12, 4,
               "DCT of a 32x32 greyscale image (robust to resizing, compression, small edits)"),
        Hasher("dhash", lambda im, s: _imagehash().dhash(im, hash_size=s), 8, 5, 1,
               "horizontal gradient signs of a 9x8 greyscale image (fast)"),
        Hasher("ahash", lambda im, s: _imagehash().average_hash(im, hash_size=s), 8, 2, 1,
               "pixels above the mean of an 8x8 greyscale image (fastest, least robust)"),
        WHash("whash", lambda im, s: _imagehash().whash(im, hash_size=s), 8, 2, None,
              "Haar wavelet low band (scale follows the image size: decoded at full size)"),
        ColorHash("colorhash", lambda im, s: _imagehash().colorhash(im, binbits=s), 3, 0, None,
                  "hue/saturation histogram (size = bits per bin): colour similarity, not a duplicate "
                  "detector alone", grey=False)):
    HASHERS.register(_hasher.name, _hasher)

DEFAULT_HASH = "phash"


def get_hasher(name: str) -> Hasher:
    return HASHERS.get(name)
