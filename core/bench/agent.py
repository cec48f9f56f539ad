"""Soak / bench of the live agent: real avatar, real lip model and renderer, frames through the
real pyvirtualcam API into a recording backend, audio from a file (real time) or a private
PulseAudio server's microphone.

    hygie bench agent --minutes 20 [--avatar PKG] [--source pulse|file] [--audio FILE]
                      [--no-heap-tuning] [--malloc-trim] [--trace-memory]

Reports fps, p50/p95 latency, CPU %, and memory: RSS each minute (sampled every 5 s), its slope
(MB/min, least squares) over minutes >= 5 and >= 10, and glibc's heap (in use vs held free) at
start and end. Everything the bench records is allocated before the agent starts, so the RSS
measured is the agent's own. `--no-heap-tuning` runs the agent without heap.py's fixed mmap
threshold (the "before" of that fix); `--malloc-trim` returns free heap to the system once a
minute (a comparison: the cost of fragmentation); `--trace-memory` runs tracemalloc and prints
the Python allocations that grew most between minute 1 and the end.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_S = 5.0  # RSS sampling period


@dataclass
class MemoryTrace:
    """Preallocated per-5-s samples: time, RSS, glibc heap in use / held free, 1-min load average."""
    t: np.ndarray
    rss: np.ndarray
    in_use: np.ndarray
    free_held: np.ndarray
    load: np.ndarray
    n: int = 0

    @classmethod
    def for_minutes(cls, minutes: float) -> "MemoryTrace":
        k = int(minutes * 60 / SAMPLE_S) + 8
        return cls(*(np.full(k, np.nan) for _ in range(5)))

    def add(self, t: float, rss: float, in_use: float, free_held: float, load: float) -> None:
        if self.n < len(self.t):
            self.t[self.n], self.rss[self.n], self.in_use[self.n], self.free_held[self.n], self.load[self.n] = (
                t, rss, in_use, free_held, load)
            self.n += 1

    def at_minutes(self, arr: np.ndarray, minutes: float) -> list[float | None]:
        """The sample nearest each whole minute 0..minutes."""
        t = self.t[:self.n]
        out: list[float | None] = []
        for m in range(int(minutes) + 1):
            if not len(t):
                out.append(None)
                continue
            k = int(np.argmin(np.abs(t - 60 * m)))
            out.append(None if abs(t[k] - 60 * m) > SAMPLE_S or np.isnan(arr[k]) else round(float(arr[k]), 1))
        return out

    def slope(self, from_min: float) -> float | None:
        """RSS slope in MB/min (least squares) over the samples from `from_min` on; None with < 2 minutes of them."""
        t, r = self.t[:self.n], self.rss[:self.n]
        m = t >= 60 * from_min
        if m.sum() < 3 or t[m][-1] - t[m][0] < 120:
            return None
        return round(float(np.polyfit(t[m] / 60.0, r[m], 1)[0]), 3)


def _rss_mb(proc) -> float:
    return proc.memory_info().rss / 2**20


def run_agent_bench(minutes: float, avatar: str | None = None, source: str = "file", audio: str | None = None,
                    fps: float = 30.0, size: str | None = None, block_ms: float | None = None,
                    heap_tuning: bool = True, malloc_trim_each_minute: bool = False, trace_memory: bool = False,
                    top: int = 15) -> dict:
    import psutil

    from hygie.core.bench import null_camera
    from hygie.core.live import heap
    from hygie.core.live.agent import build_agent, close_all
    from hygie.core.live.config import AgentConfig
    from hygie.core.audio.capture import AudioInput, FileAudioSource
    from hygie.core.package.bundled import demo_speech_path

    audio = str(audio or demo_speech_path())
    proc = psutil.Process()
    pulse = None
    stop = threading.Event()
    if source == "pulse":
        from hygie.core.bench.private_pulse import PulseServer
        pulse = PulseServer()
        pulse.start()
        os.environ.update(PULSE_SERVER=pulse.server, PULSE_SOURCE="v.monitor")
        import sounddevice as sd
        sd._terminate()
        sd._initialize()
        src = None  # opened with the config's block size below
    else:
        src = FileAudioSource(audio, loop=True)
    frames_max = int(minutes * 60 * fps) + 10 * int(fps)
    cfg = AgentConfig(avatar=avatar, fps=fps, size=size, duration=minutes * 60, obs=False,
                      camera_backend=null_camera.BACKEND, report_every_s=10.0, heap_tuning=heap_tuning,
                      camera_kwargs={"capacity": frames_max})
    if block_ms is not None:
        cfg.block_ms = block_ms
    trace = MemoryTrace.for_minutes(minutes)
    snaps: dict = {}
    trims: list[float] = [0.0]  # MB released by the once-a-minute trims
    if trace_memory:
        import tracemalloc
        tracemalloc.start(4)
    try:
        if src is None:
            src = AudioInput("pulse", block_ms=cfg.block_ms)
        agent, closers = build_agent(cfg, source=src)
        if pulse is not None:
            from hygie.core.media.audio_file import load_audio
            data = load_audio(audio)

            def feed() -> None:  # loop the file into the sink for the whole soak
                while not stop.is_set():
                    p = pulse.play_array(data)
                    while p.poll() is None and not stop.is_set():
                        time.sleep(0.2)
            threading.Thread(target=feed, daemon=True).start()
        proc.cpu_percent(None)
        heap_start = heap.heap_info()
        t0 = time.time()

        def sample() -> None:
            next_minute = 1
            while not agent.stopping and not stop.is_set() and time.time() - t0 < minutes * 60 + 5:
                t = time.time() - t0
                h = heap.heap_info()
                trace.add(t, _rss_mb(proc), h.in_use_mb if h else np.nan, h.free_held_mb if h else np.nan,
                          os.getloadavg()[0])
                if t >= 60 * next_minute:
                    next_minute += 1
                    if trace_memory and "minute1" not in snaps:
                        import tracemalloc
                        snaps["minute1"] = tracemalloc.take_snapshot()
                    if malloc_trim_each_minute:
                        before = _rss_mb(proc)
                        heap.malloc_trim()
                        trims[0] += before - _rss_mb(proc)
                stop.wait(SAMPLE_S - (time.time() - t0) % SAMPLE_S)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        summary = agent.run()
        stop.set()
        sampler.join(timeout=SAMPLE_S + 1)
        cpu = proc.cpu_percent(None)
        rss_end = _rss_mb(proc)
        heap_end = heap.heap_info()
        if trace_memory:
            import tracemalloc
            end = tracemalloc.take_snapshot()
            tracemalloc.stop()
            if "minute1" in snaps:
                growers = end.compare_to(snaps["minute1"], "traceback")[:top]
                summary["tracemalloc_top_growth"] = [
                    {"kB": round(s.size_diff / 1024, 1), "blocks": s.count_diff,
                     # the allocating line first, then its callers (a Traceback runs oldest -> newest)
                     "where": " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in reversed(s.traceback))}
                    for s in growers]
        # what the allocator held free at the end: RSS that one malloc_trim gives back
        heap.malloc_trim()
        rss_trimmed = _rss_mb(proc)
        close_all(closers)
    finally:
        stop.set()
        if pulse is not None:
            pulse.stop()
    rss_min = trace.at_minutes(trace.rss, minutes)
    summary.update(
        cpu_percent=cpu, rss_start_mb=rss_min[0], rss_end_mb=round(rss_end, 1), rss_after_warmup_mb=rss_min[1] if len(rss_min) > 1 else None,
        rss_max_mb=round(float(np.nanmax(trace.rss[:trace.n])), 1) if trace.n else None,
        rss_each_minute_mb=rss_min, rss_slope_from_5_min_mb_per_min=trace.slope(5),
        rss_slope_from_10_min_mb_per_min=trace.slope(10),
        heap_in_use_each_minute_mb=trace.at_minutes(trace.in_use, minutes),
        heap_free_held_each_minute_mb=trace.at_minutes(trace.free_held, minutes),
        heap_start=heap_start.__dict__ if heap_start else None, heap_end=heap_end.__dict__ if heap_end else None,
        rss_after_final_malloc_trim_mb=round(rss_trimmed, 1),
        load_avg_each_minute=trace.at_minutes(trace.load, minutes),
        heap_tuning=heap_tuning, malloc_trim_each_minute=malloc_trim_each_minute,
        released_by_minute_trims_mb=round(trims[0], 1) if malloc_trim_each_minute else None,
        frames_recorded=int(min(frames_max, getattr(null_camera.RecordingBackend.instances[-1], "n_sent", 0)))
        if null_camera.RecordingBackend.instances else None,
        source=source, minutes=minutes, cores=psutil.cpu_count())
    return summary


def format_memory(s: dict) -> str:
    """The memory part of a run as a table: minute, RSS, heap in use, held free, load."""
    lines = ["| minute | RSS MB | heap in use MB | heap held free MB | load (1 min) |", "|---|---|---|---|---|"]
    for m, (r, u, f, ld) in enumerate(zip(s["rss_each_minute_mb"], s["heap_in_use_each_minute_mb"],
                                          s["heap_free_held_each_minute_mb"], s["load_avg_each_minute"])):
        lines.append(f"| {m} | {r} | {u} | {f} | {ld} |")
    lines.append(f"RSS slope from minute 5: {s['rss_slope_from_5_min_mb_per_min']} MB/min; from minute 10: "
                 f"{s['rss_slope_from_10_min_mb_per_min']} MB/min; end {s['rss_end_mb']} MB, after one malloc_trim "
                 f"{s['rss_after_final_malloc_trim_mb']} MB (heap tuning {'on' if s['heap_tuning'] else 'off'})")
    for g in s.get("tracemalloc_top_growth", []):
        lines.append(f"  {g['kB']:+9.1f} kB {g['blocks']:+6d} blocks  {g['where']}")
    return "\n".join(lines)
