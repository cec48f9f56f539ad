"""Batch throughput: the same jobs rendered serially in one process, then by `render-batch` on an
embedded Ray with N workers, alternately, in one run; jobs/min, frames/s and the ratio.

The serial side is as fast as one process gets: the avatar is loaded once and one renderer is
kept for every job (exactly what one batch worker does), so the ratio measures the scale-out,
not start-up costs. Ray's start-up is reported apart. The machine may be shared: the load
average before and after each run is printed beside the figures.
"""
from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

TARGET_RATIO_2 = 1.7  # 2 workers on 2 cores against one process


def _serial(avatar_path, audio: list[str], outdir: Path) -> dict:
    from hygie.core.package.avatar import load_package
    from hygie.core.render.job import RenderJob, make_renderer, render_job

    t0, cpu0 = time.perf_counter(), time.process_time()
    avatar = load_package(avatar_path)
    renderer = make_renderer(avatar, None, "letterbox")
    frames = 0
    try:
        for i, a in enumerate(audio):
            frames += render_job(avatar, RenderJob(outdir / f"{i:03d}.mp4", audio=a), renderer=renderer,
                                 progress=lambda k: None).frames
    finally:
        renderer.close()
    s = time.perf_counter() - t0
    return {"mode": "serial (1 process)", "workers": 1, "jobs": len(audio), "frames": frames, "seconds": s,
            "startup_s": 0.0, "cpu_s": time.process_time() - cpu0}


def _ray(avatar_path, audio: list[str], outdir: Path, workers: int) -> dict:
    from hygie.core.batch.runner import BatchOptions, run_batch

    manifest = outdir / "jobs.jsonl"
    manifest.write_text("".join(json.dumps({"avatar": str(avatar_path or ""), "audio": a, "output": f"{i:03d}.mp4"})
                                + "\n" for i, a in enumerate(audio)))
    s = run_batch(BatchOptions(manifest, outdir / "out", ray=None, workers=workers, show_progress=False))
    if s.failed or s.done != len(audio):
        raise RuntimeError(f"the Ray run did not finish every job: {s.line()}")
    return {"mode": f"Ray embedded, {workers} workers", "workers": workers, "jobs": s.done, "frames": s.frames,
            "seconds": s.seconds, "startup_s": s.startup_s, "per_worker": s.per_worker,
            "cpu_s": sum(w.get("cpu_s", 0.0) for w in s.per_worker)}


def run(avatar=None, audio: list[str] | None = None, jobs: int = 12, workers: int = 2, rounds: int = 3) -> dict:
    from hygie.core.package.bundled import demo_speech_path

    clips = [str(a) for a in (audio or [demo_speech_path()])]
    work = [clips[i % len(clips)] for i in range(jobs)]
    runs = []
    with tempfile.TemporaryDirectory(prefix="hygie-bench-batch-") as tmp:
        for r in range(rounds):
            for kind in ("serial", "ray"):
                d = Path(tmp) / f"{kind}{r}"
                d.mkdir()
                load0 = os.getloadavg()[0]
                res = _serial(avatar, work, d) if kind == "serial" else _ray(avatar, work, d, workers)
                res.update(round=r, load_before=load0, load_after=os.getloadavg()[0],
                           jobs_per_min=60 * res["jobs"] / res["seconds"], frames_per_s=res["frames"] / res["seconds"])
                runs.append(res)
                log.info("%s: %.1f frames/s", res["mode"], res["frames_per_s"])
    ser = [x["frames_per_s"] for x in runs if x["workers"] == 1]
    par = [x["frames_per_s"] for x in runs if x["workers"] > 1]
    ratios = [p / s for s, p in zip(ser, par)]
    return {"jobs": jobs, "clips": clips, "workers": workers, "cores": os.cpu_count(), "runs": runs,
            "ratio_per_round": ratios, "ratio": statistics.median(ratios), "target": TARGET_RATIO_2}


def format_result(res: dict) -> str:
    lines = [f"batch rendering: {res['jobs']} jobs of {', '.join(Path(c).name for c in res['clips'])}, "
             f"{res['cores']} cores (machine shared: load average shown)",
             f"{'run':<28}{'jobs':>5}{'frames':>8}{'wall s':>8}{'jobs/min':>10}{'frames/s':>10}"
             f"{'CPU s':>7}{'cores':>6}{'Ray start s':>12}{'load':>12}"]
    for x in res["runs"]:
        lines.append(f"{x['mode'] + ' #' + str(x['round'] + 1):<28}{x['jobs']:>5}{x['frames']:>8}{x['seconds']:>8.1f}"
                     f"{x['jobs_per_min']:>10.1f}{x['frames_per_s']:>10.0f}"
                     f"{x['cpu_s']:>7.1f}{x['cpu_s'] / x['seconds']:>6.2f}"
                     f"{(x['startup_s'] if x['workers'] > 1 else 0):>12.1f}"
                     f"{x['load_before']:>6.1f}->{x['load_after']:<5.1f}")
    per = ", ".join(f"{r:.2f}" for r in res["ratio_per_round"])
    lines.append(f"Ray {res['workers']} workers / serial, frames/s: {res['ratio']:.2f} (median; rounds {per}); "
                 f"target >= {res['target']} on 2 cores")
    return "\n".join(lines)
