"""heap.HeapTrimmer: freed heap memory goes back to the system once it has grown (glibc)."""

from __future__ import annotations

import ctypes
import time

import numpy as np
import pytest

from ganinstrument.common.heap import HeapTrimmer


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_a_trim_returns_freed_memory_the_raised_threshold_kept():
    """With the trim threshold raised as the instrument raises it, freed small blocks stay
    resident; one trim gives them back."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    assert libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)
    try:
        blocks = [np.ones(4096 * 16, np.uint8) for _ in range(4000)]  # 256 MiB in 64 KiB blocks
        keep = blocks[::64]  # a few survivors pin the heap's top: only a trim frees the middle
        del blocks
        before = rss_bytes()
        trimmer = HeapTrimmer()
        seen = []
        trimmer.on_trim.append(lambda began, ended: seen.append((began, ended)))
        trimmer.on_trim.insert(0, lambda began, ended: 1 / 0)  # a failing observer stops nothing
        assert trimmer.trim()
        after = rss_bytes()
        assert before - after > 100 * 2**20, (before >> 20, after >> 20)
        assert trimmer.trims == 1 and trimmer.last_ms > 0 and trimmer.max_ms >= trimmer.last_ms
        (began, ended), = seen  # the observer saw the one trim, with its span
        assert (ended - began) * 1e3 == pytest.approx(trimmer.last_ms)
        del keep
    finally:
        libc.mallopt(m_trim_threshold, 128 * 1024)
        libc.mallopt(m_mmap_threshold, 128 * 1024)


def test_it_trims_only_once_the_heap_has_grown_past_the_slack():
    """Steady memory: checks never trim (a trim would make the frames fault their reused blocks
    back in). Freed memory kept by the raised threshold: the next check trims it."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    assert libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)
    try:
        trimmer = HeapTrimmer(slack_bytes=64 * 2**20)
        assert trimmer.check() is False  # notes where it settled
        for _ in range(3):
            scratch = [np.ones(4096 * 16, np.uint8) for _ in range(200)]  # 12.5 MiB a "frame"
            del scratch
            assert trimmer.check() is False
        assert trimmer.trims == 0
        blocks = [np.ones(4096 * 16, np.uint8) for _ in range(4000)]  # 256 MiB in 64 KiB blocks
        keep = blocks[::64]
        del blocks
        before = rss_bytes()
        assert trimmer.check() is True
        assert before - rss_bytes() > 100 * 2**20 and trimmer.trims == 1
        assert trimmer.check() is False  # settles again before it trims again
        assert trimmer.checks == 6
        del keep
    finally:
        libc.mallopt(m_trim_threshold, 128 * 1024)
        libc.mallopt(m_mmap_threshold, 128 * 1024)


def test_the_thread_checks_on_its_interval_and_stops():
    trimmer = HeapTrimmer(interval_s=0.02, slack_bytes=0)
    assert trimmer.start()
    deadline = time.monotonic() + 5
    while trimmer.checks < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert trimmer.checks >= 4 and trimmer.trims >= 1  # one trim at the start, then checks
    assert trimmer.stop(timeout_s=2.0)
    done = trimmer.checks
    time.sleep(0.1)
    assert trimmer.checks == done


def test_bad_interval():
    with pytest.raises(ValueError, match="interval_s"):
        HeapTrimmer(0)
    with pytest.raises(ValueError, match="slack_bytes"):
        HeapTrimmer(slack_bytes=-1)
