"""Memory a burst of large pictures took goes back to the system afterwards.

glibc raises its mmap threshold each time a large block is freed, so after a few big decodes later
blocks of pictures come from the heap, whose freed pages it keeps (RSS stayed gigabytes above the start
after a burst). A fixed threshold keeps every picture-sized block in its own mapping, returned on free.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 20  # blocks of 1 MiB and more (every picture; Pillow allocates them in 16 MiB blocks)


@functools.cache
def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold for this process; False where there is no glibc (nothing changes)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False
