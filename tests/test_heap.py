"""heap.py: with glibc's mmap threshold fixed, frame-sized buffers freed among small long-lived objects go back
to the system instead of piling up as free heap the process keeps (the live agent's RSS growth, docs/live_agent.md)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hygie.core.live import heap

pytestmark = pytest.mark.skipif(heap._glibc() is None, reason="the mmap threshold is Linux glibc only")

# The agent's pattern, in a fresh process (mallopt cannot be undone in this one): frame-sized numpy buffers of
# varying size, a few alive at a time, interleaved with small (> 512 B: malloc, not pymalloc) objects that live
# on. First one large block is freed, which raises glibc's dynamic threshold, as a long run does.
_SCENARIO = """
import json, sys
import numpy as np
from hygie.core.live import heap
tuned = heap.tune_heap() if sys.argv[1] == "tuned" else False
rng = np.random.default_rng(0)
keep, live = [], []
big = np.ones(8 << 20, np.uint8); del big
for i in range(3000):
    live.append(np.ones(int(rng.integers(150_000, 2_000_000)), np.uint8))
    keep.append(bytes(int(rng.integers(600, 3000))))
    if len(live) > 4:
        live.pop(int(rng.integers(len(live))))
    if len(keep) > 2000:
        keep.pop(int(rng.integers(len(keep))))
mid = heap.heap_info()
x = np.ones(1 << 20, np.uint8)  # a 1 MB frame buffer: an mmap of its own once tuned
with_x = heap.heap_info()
print(json.dumps(dict(tuned=tuned, free_held=mid.free_held_mb, in_use=mid.in_use_mb,
                      x_mmapped=with_x.mmapped_mb - mid.mmapped_mb)))
"""


def _run(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _SCENARIO, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fixed_threshold_keeps_free_heap_from_piling_up():
    tuned, untuned = _run("tuned"), _run("untuned")
    print("held free MB: untuned", round(untuned["free_held"], 1), "tuned", round(tuned["free_held"], 1))
    assert tuned["tuned"] is True
    # the same live data in both (measured 13.5 MB)
    assert abs(tuned["in_use"] - untuned["in_use"]) < 0.25 * untuned["in_use"]
    # tuned: large blocks are mmapped and returned, the heap keeps almost nothing free (measured 0.2 MB)
    assert tuned["free_held"] < 2.0
    assert tuned["x_mmapped"] >= 1.0
    # untuned, glibc held the freed buffers as free heap (measured 13.7 MB) and served the 1 MB from it
    assert untuned["free_held"] > 4 * max(tuned["free_held"], 1.0)
    assert untuned["x_mmapped"] < 1.0


def test_heap_info_and_tuning_in_this_process():
    h = heap.heap_info()
    assert h is not None and h.in_use_mb > 0 and h.free_held_mb >= 0
    assert heap.tune_heap() is True  # the agent's default: idempotent, safe to repeat


def test_not_glibc_is_a_logged_no_op(monkeypatch, caplog):
    monkeypatch.setattr(heap, "_libc", None)
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    with caplog.at_level("INFO", logger=heap.__name__):
        assert heap.tune_heap() is False
    assert heap.heap_info() is None and heap.malloc_trim() is False
    assert "not Linux glibc" in caplog.text
