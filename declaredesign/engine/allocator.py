"""Keep freed memory in the worker processes the engine owns.

A block allocates and frees the same few dozen column-sized arrays (megabytes each)
step after step, block after block. glibc's ``malloc`` serves such sizes with fresh
``mmap`` pages or trims the top of its heap once they are freed, so the next array
page-faults its memory in again, zero-filled by the kernel: on the forum's multilevel
design about a tenth of a worker's CPU time, and more or less from one release to
the next depending only on the order arrays happen to be freed in. Raising the
``mmap`` and trim thresholds lets a worker reuse its heap instead; its peak memory is
what one block needs, as before, and it holds that memory until it exits.

Only processes that exist to run chunks (the process pool's workers) do this; a
user's own process, Executor or Dask worker is left alone. Linux with glibc only;
elsewhere nothing happens (this is a speed-up, never a requirement).
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

#: Allocations up to this size come from the heap and are reused after free (bytes).
MMAP_THRESHOLD = 64 << 20
#: Free memory kept at the top of the heap rather than returned to the system (bytes).
TRIM_THRESHOLD = 256 << 20

# glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Ask glibc's ``malloc`` to keep freed blocks for reuse; return whether it agreed.

    Call it only in a process the engine owns (a pool worker): the setting lasts for
    the life of the process.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # not glibc (or no C library symbols exported)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    try:
        return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
            bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except Exception:  # noqa: BLE001 -- an unexpected libc: leave the allocator as it is
        return False
