"""The server gives free heap memory back to the system (cove.runtime.usage)."""

from __future__ import annotations

import platform

import pytest

from cove.runtime.usage import release_free_memory, resident_bytes


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_heap_memory_goes_back_to_the_system() -> None:
    # 64 KiB blocks come from the heap (below glibc's mmap threshold); the last one stays,
    # so freeing the others leaves ~190 MB free inside the heap, which free() keeps.
    blocks = [bytearray(64 * 1024) for _ in range(3000)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident
    pinned = blocks.pop()
    del blocks
    before = resident_bytes()
    assert release_free_memory() is True
    after = resident_bytes()
    assert before is not None and after is not None
    assert before - after > 100 * 1024 * 1024, (before, after)
    assert len(pinned) == 64 * 1024
