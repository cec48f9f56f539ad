"""Soak / bench of the live agent: real avatar, real lip model and renderer, frames through the
real pyvirtualcam API into a recording backend, audio from a file (real time) or a private
PulseAudio server's microphone.

    hygie bench agent --minutes 10 [--avatar PKG] [--source pulse|file] [--audio FILE]

Reports fps, p50/p95 latency, CPU % and RSS over the run (sampled every 5 s).
"""
from __future__ import annotations

import os
import threading
import time


def _rss_mb(proc) -> float:
    return proc.memory_info().rss / 2**20


def run_agent_bench(minutes: float, avatar: str | None = None, source: str = "file", audio: str | None = None,
                    fps: float = 30.0, size: str | None = None, block_ms: float | None = None) -> dict:
    import psutil

    from hygie.core.bench import null_camera
    from hygie.core.live.agent import build_agent, close_all
    from hygie.core.live.config import AgentConfig
    from hygie.core.audio.capture import AudioInput, FileAudioSource
    from hygie.core.package.bundled import demo_speech_path

    audio = str(audio or demo_speech_path())
    proc = psutil.Process()
    pulse = None
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
    cfg = AgentConfig(avatar=avatar, fps=fps, size=size, duration=minutes * 60, obs=False,
                      camera_backend=null_camera.BACKEND, report_every_s=10.0)
    if block_ms is not None:
        cfg.block_ms = block_ms
    samples: list[tuple[float, float]] = []
    try:
        if src is None:
            src = AudioInput("pulse", block_ms=cfg.block_ms)
        agent, closers = build_agent(cfg, source=src)
        if pulse is not None:
            from hygie.core.media.audio_file import load_audio
            data = load_audio(audio)
            stop = threading.Event()

            def feed() -> None:  # loop the file into the sink for the whole soak
                while not stop.is_set():
                    p = pulse.play_array(data)
                    while p.poll() is None and not stop.is_set():
                        time.sleep(0.2)
            threading.Thread(target=feed, daemon=True).start()
        proc.cpu_percent(None)
        rss_start = _rss_mb(proc)
        t0 = time.time()

        def sample_rss() -> None:
            while not agent.stopping and time.time() - t0 < minutes * 60 + 5:
                samples.append((time.time() - t0, _rss_mb(proc)))
                time.sleep(5)
        threading.Thread(target=sample_rss, daemon=True).start()
        summary = agent.run()
        cpu = proc.cpu_percent(None)
        rss_end = _rss_mb(proc)
        close_all(closers)
    finally:
        if pulse is not None:
            stop.set() if "stop" in locals() else None
            pulse.stop()
    # RSS after the first minute vs the end: the warm-up (caches, arena) is not a leak
    warm = [r for t, r in samples if t >= min(60, minutes * 30)]
    summary.update(cpu_percent=cpu, rss_start_mb=rss_start, rss_end_mb=rss_end,
                   rss_after_warmup_mb=warm[0] if warm else None, rss_max_mb=max([r for _, r in samples] or [rss_end]),
                   source=source, minutes=minutes, cores=psutil.cpu_count(),
                   rss_each_minute_mb=[round(r, 1) for t, r in samples if int(t // 5) % 12 == 0])
    return summary
