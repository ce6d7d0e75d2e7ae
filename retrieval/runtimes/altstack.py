"""A bigger signal stack once a runtime may have enabled AMX (OpenVINO on a CPU with AMX tiles).

CPython runs its signal handlers (the DataLoader's SIGCHLD handler among them) on the alternate signal
stack when one is installed (faulthandler installs one: pytest, PYTHONFAULTHANDLER). With AMX enabled,
the CPU state saved for a signal outgrows that stack and the process dies of SIGSEGV in the handler; a
larger alternate stack (kept for the life of the process) avoids it. Linux only; a no-op elsewhere.
"""
from __future__ import annotations

import ctypes
import sys
import threading

SIZE = 1 << 20
_kept: list[ctypes.Array] = []  # the stacks installed: they must outlive every signal
_lock = threading.Lock()


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def enlarge_signal_stack() -> None:
    """Give the calling thread a 1 MiB alternate signal stack if it has a smaller one."""
    if not sys.platform.startswith("linux"):
        return
    with _lock:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            old = _StackT()
            if libc.sigaltstack(None, ctypes.byref(old)) != 0 or old.ss_flags & 2 or old.ss_size >= SIZE:
                return  # error, disabled (SS_DISABLE), or already large
            buf = ctypes.create_string_buffer(SIZE)
            new = _StackT(ctypes.cast(buf, ctypes.c_void_p), 0, SIZE)
            if libc.sigaltstack(ctypes.byref(new), None) == 0:
                _kept.append(buf)
        except (OSError, AttributeError):
            return
