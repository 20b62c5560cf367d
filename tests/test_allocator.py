"""busque.models.allocator: after Model.load(), a freed multi-megabyte block stays in the heap
(checked with glibc's own accounting of mapped memory, in a fresh process)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

PROBE = """
import ctypes, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def mapped_by(size):
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(size)
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(block)
    return mapped

# Both under the 32 MiB threshold, over glibc's default 128 KiB. Freeing the first raises glibc's
# own threshold to its size, so the second is larger: only the fixed threshold keeps it unmapped.
first = mapped_by(24 * 2**20)
if sys.argv[1] == "load":
    from busque.models.echo import Echo
    Echo().load()
print(first, mapped_by(28 * 2**20))
"""


def probe(mode: str) -> tuple[int, int]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    before, after = map(int, result.stdout.split())
    return before, after


def test_a_loaded_model_keeps_freed_blocks_in_the_heap():
    default, tuned = probe("load")
    assert default >= 24 * 2**20  # glibc's default: a fresh mapping for the block
    assert tuned == 0  # after Model.load(): served from the heap


def test_without_a_model_the_default_stays():
    first, second = probe("none")
    assert first >= 24 * 2**20 and second >= 28 * 2**20
