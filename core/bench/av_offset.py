"""Voice-vs-face offset measured where a call app sits, with the virtual mic and with the raw mic, in one run.

    hygie bench av-offset --minutes 10 [--avatar PKG] [--audio SPEECH]

A private PulseAudio plays speech (looped; default the bundled demo sentence, the project's figures use
held-out GRID speech) into a null sink `v`: the microphone.
The live agent records `v.monitor`, makes "Hygie Avatar Mic" and sends frames through the real
camera API (the registered test backend). Two "call apps" record through PulseAudio at the same
time: one the raw microphone (`v.monitor`, today's situation), one "Hygie Avatar Mic". The offset
of each against the frames is estimated on sliding 10-s windows (hygie.core.live.av_offset), the
mouth opening being the shape the agent asked the renderer for. Also gives fps, CPU, RSS and the
machine's load average each minute (a shared machine's load moves every figure).
"""
from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

log = logging.getLogger(__name__)


class PulseRecorder:
    """A call app recording a PulseAudio source: 10 ms envelope bins, each with its arrival time."""

    def __init__(self, source: str, seconds_max: float):
        from hygie.core.live.pulse_stream import PulseStream

        self.stream = PulseStream("record", source, 16000, name=f"bench {source}", buffer_ms=5)
        n = int(seconds_max * 100) + 100
        self.env = np.zeros(n, np.float32)
        self.t_arrival = np.zeros(n, np.float64)
        self.n = 0
        self._run = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from hygie.core.live.av_offset import audio_envelope

        buf = np.zeros(160, np.float32)
        while self._run and self.n < len(self.env):
            self.stream.read(160, buf)
            self.t_arrival[self.n] = time.perf_counter()
            self.env[self.n] = audio_envelope(buf)[0]
            self.n += 1

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        """(bin centre times, dB): a bin's samples arrived at least 10 ms apart; the least-delayed
        arrival of each 2 s stretch anchors the clock (a read can return late, never early)."""
        n = self.n
        idx = np.arange(n)
        arr = self.t_arrival[:n] - (idx + 1) * 0.010
        block = 200
        off = np.array([arr[max(0, i - block): i + block].min() for i in range(0, n, 50)])
        off_i = np.interp(idx, np.arange(0, n, 50), off)
        return off_i + (idx + 0.5) * 0.010, self.env[:n].astype(np.float64)

    def close(self) -> None:
        self._run = False
        self.thread.join(timeout=1)
        if not self.thread.is_alive():
            self.stream.close()


def _in_sync_windows(avatar, audio: np.ndarray, fps: float, step_s: float = 5.0) -> list:
    """The estimator's windows on a render in sync by construction (the lip model run offline on the file)."""
    from hygie.core.audio.mel import LogMel
    from hygie.core.face import geometry as G
    from hygie.core.lips.model import LipModel
    from hygie.core.live.av_offset import audio_envelope, offsets

    coeffs = LipModel(avatar).predict(LogMel(avatar.mel_config)(audio))
    t = np.arange(int(len(audio) / 16000 * fps)) / fps
    idx = np.clip(avatar.mel_config.frame_at(t), 0, len(coeffs) - 1)
    opening = G.mouth_opening(avatar.coeffs_to_lips(coeffs[idx]))
    env = audio_envelope(audio)
    return offsets(t, opening, (np.arange(len(env)) + 0.5) * 0.010, env, step_s=step_s, bias_s=0.0)


def offline_bias(avatar, audio: np.ndarray, fps: float) -> float:
    """The offset the estimator reads on a render in sync by construction, over the whole of `audio`."""
    return float(np.median([x.offset_s for x in _in_sync_windows(avatar, audio, fps)]))


def offline_bias_curve(avatar, audio: np.ndarray, fps: float, step_s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(file position of a window's centre, s; bias there, s) on the file looped twice: the estimator's
    reading on an in-sync render depends on the speech in the window (−8 ms on one minute of held-out
    GRID, −13 ms on the next), so a looped run subtracts the bias of the stretch each window heard."""
    dur = len(audio) / 16000
    w = _in_sync_windows(avatar, np.concatenate([audio, audio]), fps, step_s)
    pos = np.array([x.t for x in w])
    keep = (pos >= dur * 0.5) & (pos < dur * 1.5)  # one period, away from the ends of the doubled file
    pos, b = np.mod(pos[keep], dur), np.array([x.offset_s for x in w])[keep]
    order = np.argsort(pos)
    return pos[order], b[order]


def debias(windows: list, starts: np.ndarray, curve: tuple[np.ndarray, np.ndarray], dur: float) -> list:
    """Each window's offset less the bias of the file stretch it heard (the loop that started last before it)."""
    from hygie.core.live.av_offset import Window

    pos_c, b_c = curve
    out = []
    for w in windows:
        k = np.searchsorted(starts, w.t, side="right") - 1
        if k < 0:
            continue
        x = np.mod(w.t - starts[k], dur)
        out.append(Window(w.t, w.offset_s - float(np.interp(x, pos_c, b_c, period=dur)), w.corr))
    return out


def run_offset_bench(minutes: float, avatar_path: str | None = None, audio_path: str | None = None,
                     fps: float = 30.0, progress: bool = False) -> dict:
    import psutil

    from hygie.core.bench import null_camera
    from hygie.core.bench.private_pulse import PulseServer
    from hygie.core.face import geometry as G
    from hygie.core.live.agent import build_agent, close_all
    from hygie.core.live.config import AgentConfig
    from hygie.core.audio.capture import AudioInput
    from hygie.core.live.av_offset import offsets, summarise
    from hygie.core.live.virtual_mic import SOURCE_NAME
    from hygie.core.media.audio_file import load_audio
    from hygie.core.package.avatar import load_package
    from hygie.core.package.bundled import demo_speech_path

    audio = load_audio(str(audio_path or demo_speech_path()), 16000)
    avatar = load_package(avatar_path)
    bias = offline_bias(avatar, audio[: 16000 * 60], fps)
    curve = offline_bias_curve(avatar, audio, fps)
    starts: list[float] = []  # perf_counter when each pass over the file was handed to the player
    proc = psutil.Process()
    pulse = PulseServer()
    pulse.start()
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PULSE_SOURCE", "PULSE_SINK")}
    os.environ.update(PULSE_SERVER=pulse.server, PULSE_SOURCE="v.monitor", PULSE_SINK="v")
    import sounddevice as sd
    sd._terminate()
    sd._initialize()
    frames: list[tuple[float, float]] = []
    closed_open = None
    stop = threading.Event()
    recs: dict[str, PulseRecorder] = {}
    rss: list[tuple[float, float]] = []
    load: list[float] = []
    try:
        src = AudioInput("pulse", block_ms=5.0)
        cfg = AgentConfig(avatar=avatar_path, fps=fps, duration=minutes * 60, obs=False, virtual_mic=True,
                          camera_backend=null_camera.BACKEND, report_every_s=30.0)

        def on_frame(rec) -> None:
            c = rec.coeffs
            o = closed_open if c is None else float(G.mouth_opening(avatar.coeffs_to_lips(c)))
            frames.append((rec.t_sent, o))

        agent, closers = build_agent(cfg, source=src, on_frame=on_frame)
        closed_open = float(G.mouth_opening(avatar.coeffs_to_lips(agent.renderer.closed_coeffs)))
        backend = null_camera.RecordingBackend.instances[-1]
        recs = {"virtual mic": PulseRecorder(SOURCE_NAME, minutes * 60 + 30),
                "raw mic": PulseRecorder("v.monitor", minutes * 60 + 30)}

        def feed() -> None:
            while not stop.is_set():
                starts.append(time.perf_counter())
                p = pulse.play_array(audio)
                while p.poll() is None and not stop.is_set():
                    time.sleep(0.2)
        threading.Thread(target=feed, daemon=True).start()
        t0 = time.time()

        def sample() -> None:
            while not stop.is_set():
                rss.append((time.time() - t0, proc.memory_info().rss / 2**20))
                load.append(os.getloadavg()[0])
                if progress:
                    print(f"  {(time.time() - t0) / 60:5.1f} min  load {load[-1]:.1f}  {agent.meters()}", flush=True)
                stop.wait(60)
        threading.Thread(target=sample, daemon=True).start()
        proc.cpu_percent(None)
        summary = agent.run()
        cpu = proc.cpu_percent(None)
        summary["voice"] = agent.passthrough.stats() if agent.passthrough is not None else None
        close_all(closers)
        n_backend = len(backend.times)
    finally:
        stop.set()
        for r in recs.values():
            r.close()
        pulse.stop()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    ft = np.array([f[0] for f in frames])
    fo = np.array([f[1] for f in frames])
    result = {"minutes": minutes, "bias_ms": 1000 * bias, "frames": len(frames), "frames_at_camera": n_backend,
              "agent": summary, "cpu_percent": cpu, "rss_mb": [round(r, 1) for _, r in rss],
              "load_avg_1min": [round(x, 1) for x in load], "load_avg_end": [round(x, 2) for x in os.getloadavg()],
              "cores": os.cpu_count()}
    for name, r in recs.items():
        et, ed = r.series()
        raw = offsets(ft, fo, et, ed, bias_s=0.0)
        w = debias(raw, np.array(starts), curve, len(audio) / 16000)
        result[name] = summarise(w)
        result[name]["offsets_ms"] = [round(1000 * x.offset_s, 1) for x in w]
        # the previous reading (one bias, the file's first minute, for every window), for comparison
        result[name]["one_bias"] = summarise([type(x)(x.t, x.offset_s - bias, x.corr) for x in raw])
    result["bias_curve_ms"] = [round(1000 * float(np.min(curve[1])), 1), round(1000 * float(np.max(curve[1])), 1)]
    return result


def format_table(r: dict) -> str:
    lines = ["| microphone in the call app | windows | offset p50 | p95 of abs(offset) | p5 .. p95 | drift first->last min |",
             "|---|---|---|---|---|---|"]
    for name in ("virtual mic", "raw mic"):
        s = r[name]
        if not s.get("windows"):
            lines.append(f"| {name} | 0 | — | — | — | — |")
            continue
        lines.append(f"| {name} | {s['windows']} | {s['p50_ms']:+.1f} ms | {s['p95_abs_ms']:.1f} ms | "
                     f"{s['p5_ms']:+.1f} .. {s['p95_ms']:+.1f} ms | {s['drift_ms']:+.1f} ms |")
    return "\n".join(lines)


def format_result(r: dict) -> str:
    s = r["agent"]
    load = r.get("load_avg_1min") or [0.0]
    ms = lambda v: "n/a" if v is None else f"{v:.0f} ms"  # noqa: E731
    return "\n".join([
        format_table(r),
        f"{r['minutes']:g} min | fps {s['fps']:.2f} ({s['frames']} frames, {s['late_frames']} late) | mic->frame p50 "
        f"{ms(s['latency_p50_ms'])} p95 {ms(s['latency_p95_ms'])} | CPU {r['cpu_percent']:.0f}% of one core | "
        f"RSS each minute {r['rss_mb']} MB | estimator bias per file stretch {r['bias_curve_ms'][0]:+.1f} .. "
        f"{r['bias_curve_ms'][1]:+.1f} ms (first minute {r['bias_ms']:+.1f} ms)",
        "one bias for all windows (the first minute's): " + "; ".join(
            f"{n} p50 {r[n]['one_bias'].get('p50_ms', float('nan')):+.1f} p95 {r[n]['one_bias'].get('p95_abs_ms', float('nan')):.1f} "
            f"drift {r[n]['one_bias'].get('drift_ms', float('nan')):+.1f} ms" for n in ("virtual mic", "raw mic")),
        f"load average (1 min) each minute {load} (min {min(load):.1f}, max {max(load):.1f}) on {r['cores']} cores",
        f"voice line: {s.get('voice')}"])
