"""Enrollment speed and memory: wall time and peak RSS of the whole process tree (workers included)."""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

TARGET_S = 180.0
TARGET_MB = 2048.0


def _tree_rss_mb() -> float:
    import psutil

    me = psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def run(video: Path, workers: int | None = None, cfg=None) -> dict:
    from hygie.core.enroll.config import EnrollConfig
    from hygie.core.enroll.pipeline import enroll
    from hygie.core.media.probe import probe_video

    info = probe_video(video)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:  # 10 Hz is enough: the workers' RSS grows smoothly
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_mb())
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    with tempfile.TemporaryDirectory() as tmp:
        th.start()
        t0 = time.perf_counter()
        cfg = cfg or EnrollConfig(workers=workers)
        out = enroll([video], Path(tmp) / "bench_avatar", cfg)
        elapsed = time.perf_counter() - t0
        done.set()
        th.join()
        size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
        split = json.loads((out / "avatar.json").read_text()).get("enroll_split_s", {})
    res = {"split_s": split, "video": str(video), "video_seconds": info.duration, "frame_size": f"{info.width}x{info.height}",
           "cores": os.cpu_count(), "enroll_s": elapsed, "peak_rss_mb": peak[0], "package_mb": size,
           "realtime_factor": info.duration / elapsed, "target_s": TARGET_S, "target_mb": TARGET_MB}
    return res


def format_result(r: dict) -> str:
    ok_t = "OK" if r["enroll_s"] <= r["target_s"] else "OVER"
    ok_m = "OK" if r["peak_rss_mb"] <= r["target_mb"] else "OVER"
    split = r.get("split_s", {})
    lines = "".join(f"\n  {k:44s} {v:7.1f} s" + (" (CPU, all workers)" if "CPU" in k else "")
                    for k, v in split.items())
    per_min = r["enroll_s"] / max(r["video_seconds"], 1e-9) * 300
    return (f"enroll {Path(r['video']).name} ({r['video_seconds']:.0f} s, {r['frame_size']}) on {r['cores']} cores, "
            f"no training: {r['enroll_s']:.1f} s ({r['realtime_factor']:.1f}× real time; target ≤ {r['target_s']:.0f} s: {ok_t}), "
            f"peak RSS {r['peak_rss_mb']:.0f} MB (target ≤ {r['target_mb']:.0f} MB: {ok_m}), package {r['package_mb']:.1f} MB; "
            f"at this rate 5 minutes take {per_min:.0f} s" + lines)
