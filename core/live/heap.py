"""glibc heap tuning for the long-running live agent, and the heap figures the soak bench prints.

Why: the agent allocates and frees frame-sized numpy buffers (hundreds of kB to MB) every tick,
interleaved with small long-lived objects. glibc's default mmap threshold is *dynamic*: once a
large block is freed it rises (up to 32 MB), so later large buffers come from the main heap, where
a small object allocated after them pins the top and the freed space cannot go back to the system.
The process then holds more and more free heap (measured: in-use flat, held-free 66 -> 84 MB over
20 minutes, RSS +1.6 MB/min). A fixed threshold (setting it also turns the dynamic rise off) makes
every block of >= 128 kB an mmap of its own, returned to the system by free().

Linux glibc only; elsewhere (musl, macOS, Windows) `tune_heap()` logs and does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD = 128 * 1024  # glibc's own initial value, now fixed


@dataclass(frozen=True)
class HeapInfo:
    """glibc mallinfo2 in MB: what the program holds, and what malloc keeps free without returning it."""
    in_use_mb: float  # uordblks + hblkhd: arena blocks in use + mmapped blocks
    free_held_mb: float  # fordblks: free bytes inside the arenas (RSS the program no longer uses)
    mmapped_mb: float  # hblkhd
    arena_mb: float  # arena: bytes obtained with sbrk/arenas


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


_libc: ctypes.CDLL | None = None
_tuned = False


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt/mallinfo2 exist), else None."""
    global _libc
    if _libc is not None:
        return _libc
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it (musl does not)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    _libc = libc
    return libc


def tune_heap(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold so large buffers are mmapped and returned on free (see the module doc).

    Returns True when applied. Idempotent; call it once before the live loop allocates its buffers.
    """
    global _tuned
    libc = _glibc()
    if libc is None:
        log.info("heap tuning skipped: not Linux glibc (%s); the allocator is left as it is", sys.platform)
        return False
    if libc.mallopt(M_MMAP_THRESHOLD, int(threshold)) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) refused; large buffers stay on the heap (RSS may creep)",
                    threshold)
        return False
    if not _tuned:
        log.debug("glibc mmap threshold fixed at %d kB", threshold // 1024)
    _tuned = True
    return True


def heap_info() -> HeapInfo | None:
    """glibc's mallinfo2 (glibc >= 2.33), or None where there is none."""
    libc = _glibc()
    fn = getattr(libc, "mallinfo2", None) if libc is not None else None
    if fn is None:
        return None
    fn.restype = _Mallinfo2
    m = fn()
    mb = 2.0 ** 20
    return HeapInfo(in_use_mb=(m.uordblks + m.hblkhd) / mb, free_held_mb=m.fordblks / mb, mmapped_mb=m.hblkhd / mb,
                    arena_mb=m.arena / mb)


def malloc_trim() -> bool:
    """Give free heap back to the system now (glibc); False where unavailable or nothing was released."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))
