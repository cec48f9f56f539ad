"""The live loop: microphone -> streaming log-mel -> lip model -> renderer -> virtual camera.

Each tick of the frame clock takes the audio that arrived since the last tick (never
waits for it: the capture callback fills a ring on its own thread), pushes it
through the streaming log-mel and the lip model (GRU state carried), renders and
sends one frame. The frame is always sent: silence, avatar switched off, a dead
microphone or an exception all give an idle frame, never a gap in the stream.
"""
from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from hygie.core.live.config import AgentConfig
from hygie.core.live.state import AvatarState
from hygie.core.audio.capture import AudioChunk
from hygie.core.live.latency import LatencyStats, RateMeter, fmt_ms
from hygie.core.audio.mel import MelConfig, StreamingLogMel

log = logging.getLogger(__name__)

MAX_GAP_FILL_S = 0.5  # lost input up to this long is bridged with silence; longer restarts the stream


class AudioSource(Protocol):
    name: str
    reopen_count: int

    def start(self) -> Any: ...
    def stop(self) -> None: ...
    def read(self) -> AudioChunk: ...
    def capture_time(self, index16: float, generation: int | None = None) -> float | None: ...


@dataclass
class FrameRecord:
    tick: int
    t_sent: float
    kind: str  # "speech" | "idle" | "off" | "error"
    weight: float  # 0 = closed/idle, 1 = full predicted mouth
    latency: float | None
    level_db: float
    coeffs: np.ndarray | None = None  # the mouth shape requested from the renderer (None: idle, closed)


class VoiceGate:
    """Speech/silence from the level relative to a tracked noise floor, with hangover."""

    def __init__(self, margin_db: float, min_db: float, hangover_s: float):
        self.margin_db, self.min_db, self.hangover_s = margin_db, min_db, hangover_s
        self.floor_db = -60.0
        self.level_db = -120.0
        self._last_voice = -math.inf

    def update(self, samples: np.ndarray, now: float, dt: float) -> bool:
        if samples.size:
            self.level_db = 10.0 * math.log10(float(np.mean(samples.astype(np.float64) ** 2)) + 1e-12)
            # floor follows drops at once and rises slowly (3 dB/s) so speech does not lift it
            self.floor_db = min(self.level_db, self.floor_db + 3.0 * dt)
        if self.level_db > max(self.floor_db + self.margin_db, self.min_db):
            self._last_voice = now
        return now - self._last_voice <= self.hangover_s


class Agent:
    def __init__(self, cfg: AgentConfig, source: AudioSource, lip: Any, renderer: Any, camera: Any,
                 mel_config: MelConfig, state: Any | None = None, passthrough: Any | None = None,
                 closed_coeffs: np.ndarray | None = None, on_frame: Callable[[FrameRecord], None] | None = None,
                 frame_tap: Callable[[np.ndarray], None] | None = None,
                 marks: Callable[[np.ndarray], np.ndarray] | None = None):
        self.cfg, self.source, self.lip, self.renderer, self.camera = cfg, source, lip, renderer, camera
        self.mel_cfg = mel_config
        self.mel = StreamingLogMel(mel_config)
        self.state = state or AvatarState()
        self.passthrough = passthrough
        self.on_frame = on_frame
        self.frame_tap = frame_tap  # sees every frame sent (the panel's preview): must return at once
        self.marks = marks  # watermark (+ badge) on every frame sent: provenance.live.LiveMarks
        self.lookahead_frames = int(round(float(getattr(lip, "lookahead_s", 0.0)) * mel_config.frame_rate))
        self.closed = None if closed_coeffs is None else np.asarray(closed_coeffs, np.float32)
        self.gate = VoiceGate(cfg.vad_margin_db, cfg.vad_min_db, cfg.vad_hangover_ms / 1000)
        self.latency = LatencyStats(window=int(cfg.fps * cfg.report_every_s) or 1)
        self.rate = RateMeter(window=int(cfg.fps * 3) or 2)
        self.records: deque[FrameRecord] = deque(maxlen=4096)
        self.counts = {"speech": 0, "idle": 0, "off": 0, "error": 0}
        self.errors = 0
        self._stop = threading.Event()
        self._generation: int | None = None
        self._mel_frames = 0
        self._mel_origin = 0  # 16 kHz index (in the input's generation) of mel frame 0's first sample
        self._next_start: int | None = None  # where the next chunk of audio should start
        self.audio_gaps = 0
        self._coeffs: np.ndarray | None = None
        self._coeffs_mel_idx = -1
        self._weight = 0.0
        self._fresh = False  # the lip model produced output this tick
        self._requested: np.ndarray | None = None  # coefficients of the mouth rendered this tick
        self._tick_audio: list[np.ndarray] = []  # audio pumped since the last frame (for the voice gate)
        self._t_last: float | None = None
        self._alive = False
        self._speaking = False
        self._fallback: np.ndarray | None = None
        self._last_err_log = 0.0
        self._preview_ok = cfg.preview
        self.t_start: float | None = None

    # --- control ----------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- one tick -----------------------------------------------------------------------------
    def _pump(self) -> None:
        """Pull the audio that arrived: to the voice output at once, and through mel + lip model."""
        chunk = self.source.read()
        if chunk.generation != self._generation:  # device (re)opened: streaming state starts over
            if self._generation is not None:
                log.info("audio input restarted (generation %d): resetting streaming state", chunk.generation)
            self._generation = chunk.generation
            self._restart_streams()
        self._alive = chunk.alive
        samples = self._continuous(chunk)
        if not chunk.samples.size:
            return
        self._tick_audio.append(chunk.samples)
        t_last = self.source.capture_time(chunk.start + chunk.samples.size, chunk.generation)
        if t_last is not None:
            self._t_last = t_last
        if self.passthrough is not None:
            # the voice leaves the virtual mic as late as the face showing it leaves the camera
            p50, _ = self.latency.window_percentiles()
            self.passthrough.push(chunk.samples, t_last, p50, silent=not self._speaking)
        mels = self.mel.push(samples)
        if mels is not None and len(mels):
            self._mel_frames += len(mels)
            out = self.lip.push(mels)
            if out is not None and len(out):
                self._fresh = True
                self._coeffs = np.asarray(out[-1], np.float32)
                # each output stands for the mel frame `lookahead` behind the newest
                self._coeffs_mel_idx = self._mel_frames - 1 - self.lookahead_frames

    def _pump_until_tick(self) -> None:
        """With a voice output, pass audio on every `pump_ms` between frames instead of once per frame:
        the delay line then needs no frame period of slack, so the voice can be as early as the face."""
        next_due = getattr(self.camera.clock, "next_due", None)
        if self.passthrough is None or next_due is None:
            return
        step = self.cfg.pump_ms / 1000.0
        while not self._stop.is_set():
            left = next_due() - time.perf_counter()
            if left < 1.5 * step:
                return
            time.sleep(step)
            try:
                self._pump()
            except Exception as e:
                self._log_error("audio", e)
                return

    def _audio_step(self, now: float, dt: float) -> tuple[bool, float | None]:
        """Pull new audio, advance mel + lip model. Returns (speaking, capture-to-now delay)."""
        self._pump()
        samples = self._tick_audio[0] if len(self._tick_audio) == 1 else (
            np.concatenate(self._tick_audio) if self._tick_audio else np.zeros(0, np.float32))
        self._tick_audio.clear()
        speaking = self.gate.update(samples, now, dt) and self._alive
        self._speaking = speaking
        read_delay = None if self._t_last is None or not samples.size else now - self._t_last
        return speaking and self._coeffs is not None, read_delay

    def _restart_streams(self) -> None:
        self.mel.reset()
        self.lip.reset()
        self._mel_frames = 0
        self._coeffs = None
        self._next_start = None

    def _continuous(self, chunk: AudioChunk) -> np.ndarray:
        """The chunk's samples, made continuous with the last ones so that mel frame k always stands for
        16 kHz sample `origin + k * hop` (what the latency figure and the voice delay rest on).

        A jump in `chunk.start` means samples were lost (the input ring overflowed, e.g. a slow start on a
        busy machine): a short gap is filled with silence, a long one restarts the streaming state.
        """
        samples = chunk.samples
        if not samples.size:
            return samples
        if self._next_start is None:
            self._mel_origin = chunk.start
        elif chunk.start != self._next_start:
            gap = chunk.start - self._next_start
            self.audio_gaps += 1
            if 0 < gap <= MAX_GAP_FILL_S * self.mel_cfg.sample_rate:
                samples = np.concatenate([np.zeros(gap, np.float32), samples])
            else:
                log.info("audio input skipped %.2f s: restarting the lip model's stream", gap / self.mel_cfg.sample_rate)
                self._restart_streams()
                self._mel_origin = chunk.start
        self._next_start = chunk.start + chunk.samples.size
        return samples

    def _render(self, tick: int, speaking: bool, dt: float) -> tuple[np.ndarray, str]:
        on = bool(getattr(self.state, "on", True))
        lips = on and not bool(getattr(self.state, "lips_paused", False))
        target = 1.0 if (speaking and lips) else 0.0
        step = dt / max(self.cfg.fade_ms / 1000.0, 1e-3)  # linear ease over fade_ms: no pop
        self._weight = min(target, self._weight + step) if target > self._weight else max(target, self._weight - step)
        set_voice = getattr(self.renderer, "set_voice", None)
        if set_voice is not None:  # the body walks the speaking footage while voice is present
            set_voice(bool(speaking and on))
        if self._weight > 1e-3 and self._coeffs is not None:
            closed = self.closed if self.closed is not None else np.zeros_like(self._coeffs)
            c = closed + self._weight * (self._coeffs - closed)
            self._requested = c
            return self.renderer.render(c, tick), "speech"
        self._requested = None
        frame = self.renderer.render(None, tick)
        self._fallback = frame
        return frame, ("idle" if on else "off")

    def _fallback_frame(self, tick: int) -> np.ndarray:
        try:
            self._fallback = self.renderer.idle_frame(tick)
        except Exception:
            if self._fallback is None:
                self._fallback = np.zeros((self.camera.height, self.camera.width, 3), np.uint8)
        return self._fallback

    def _log_error(self, what: str, e: BaseException) -> None:
        self.errors += 1
        now = time.perf_counter()
        if now - self._last_err_log > 2.0:  # rate-limited: a bad minute must not flood the log
            self._last_err_log = now
            log.error("%s failed (%s: %s); sending the idle frame (%d errors so far)", what,
                      e.__class__.__name__, e, self.errors, exc_info=log.isEnabledFor(logging.DEBUG))

    def _latency_of_frame(self, t_sent: float) -> float | None:
        if self._coeffs is None or self._coeffs_mel_idx < 0:
            return None
        center = self._mel_origin + self._coeffs_mel_idx * self.mel_cfg.hop_length + self.mel_cfg.win_length / 2
        t_cap = self.source.capture_time(center, self._generation)
        return None if t_cap is None else t_sent - t_cap

    def _preview(self, frame: np.ndarray) -> None:
        try:
            import cv2
            img = frame.copy()
            p50, p95 = self.latency.window_percentiles()
            st = "off" if not getattr(self.state, "on", True) else ("speaking" if self._weight > 0 else "idle")
            text = (f"{self.rate.current():.1f} fps | latency p50 {fmt_ms(p50)} p95 {fmt_ms(p95)} | "
                    f"level {self.gate.level_db:.0f} dBFS | {st}")
            cv2.putText(img, text, (8, img.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, text, (8, img.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                        cv2.LINE_AA)
            cv2.imshow("Hygie Avatar preview", img)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                self.stop()
        except Exception as e:  # headless machine, no GUI backend: keep streaming without it
            log.warning("preview disabled: %s", e)
            self._preview_ok = False

    def _report(self) -> None:
        p50, p95 = self.latency.window_percentiles()
        log.info("%.1f fps | latency p50 %s p95 %s | level %.0f dBFS | %s | overflows %d reopens %d errors %d",
                 self.rate.current(), fmt_ms(p50), fmt_ms(p95), self.gate.level_db,
                 "speaking" if self._weight > 0 else ("on" if getattr(self.state, "on", True) else "off"),
                 getattr(self.source, "overflows", 0), getattr(self.source, "reopen_count", 0), self.errors)

    # --- the loop -------------------------------------------------------------------------------
    def run(self, duration: float | None = None) -> dict:
        duration = self.cfg.duration if duration is None else duration
        restore = self._install_signals()
        clock = self.camera.clock
        self.t_start = time.perf_counter()
        last = self.t_start
        next_report = self.t_start + self.cfg.report_every_s
        try:
            clock.start()
            while not self._stop.is_set():
                self._pump_until_tick()
                tick = self.camera.sleep_until_next_frame()
                now = time.perf_counter()
                if duration is not None and now - self.t_start >= duration:
                    break
                dt, last = now - last, now
                kind = "error"
                self._fresh = False
                self._requested = None
                try:
                    speaking, _ = self._audio_step(now, dt)
                    frame, kind = self._render(tick, speaking, dt)
                except Exception as e:
                    self._log_error("frame", e)
                    frame = self._fallback_frame(tick)
                    kind = "error"
                if self.marks is not None:
                    try:
                        frame = self.marks(frame)
                    except Exception as e:
                        self._log_error("watermark", e)
                try:
                    self.camera.send(frame)
                except Exception as e:
                    self._log_error("camera send", e)
                t_sent = time.perf_counter()
                lat = self._latency_of_frame(t_sent) if self._fresh else None
                if lat is not None:
                    self.latency.add(lat)
                self.rate.mark(t_sent)
                self.counts[kind] += 1
                rec = FrameRecord(tick, t_sent, kind, self._weight, lat, self.gate.level_db, self._requested)
                self.records.append(rec)
                if self.on_frame is not None:
                    self.on_frame(rec)
                if self.frame_tap is not None:
                    self.frame_tap(frame)
                if self._preview_ok:
                    self._preview(frame)
                if t_sent >= next_report:
                    next_report = t_sent + self.cfg.report_every_s
                    self._report()
        finally:
            restore()
        return self.summary()

    def meters(self) -> dict:
        """What a status display shows now (any thread): fps, latency, voice-vs-face offset, state."""
        p50, p95 = self.latency.window_percentiles()
        pt = self.passthrough
        offset = None
        if p50 is not None:
            # when the voice reaches the call app minus when the face does; the raw microphone reaches it at once
            audio = getattr(pt, "delay_s", None) if pt is not None else 0.0
            offset = None if audio is None else audio - p50
        return {"fps": self.rate.current(), "latency_p50_ms": None if p50 is None else 1000 * p50,
                "latency_p95_ms": None if p95 is None else 1000 * p95,
                "av_offset_ms": None if offset is None else 1000 * offset,
                "voice_delayed": pt is not None, "level_db": self.gate.level_db,
                "speaking": self._weight > 0, "on": bool(getattr(self.state, "on", True)),
                "frames": self.rate.count, "errors": self.errors,
                "overflows": getattr(self.source, "overflows", 0)}

    def summary(self) -> dict:
        p50, p95 = self.latency.percentiles()
        clock = self.camera.clock
        return {
            "frames": self.rate.count, "seconds": (self.rate.last or 0) - (self.rate.first or 0),
            "fps": self.rate.overall(), "latency_p50_ms": None if p50 is None else 1000 * p50,
            "latency_p95_ms": None if p95 is None else 1000 * p95,
            "latency_max_ms": 1000 * self.latency.max if self.latency.n else None,
            "latency_samples": self.latency.n, "lookahead_ms": 1000 * self.lookahead_frames / self.mel_cfg.frame_rate,
            "late_frames": clock.late, "clock_resyncs": clock.resyncs, "errors": self.errors,
            "audio_overflows": getattr(self.source, "overflows", 0), "audio_gaps": self.audio_gaps,
            "audio_reopens": getattr(self.source, "reopen_count", 0),
            "passthrough_underruns": getattr(self.passthrough, "underruns", None),
            "passthrough_jumps": getattr(self.passthrough, "jumps", None),
            **{f"frames_{k}": v for k, v in self.counts.items()},
        }

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, _frame):
            log.info("signal %d: stopping", signum)
            self.stop()

        for s in old:
            signal.signal(s, handler)

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return restore


def format_summary(s: dict) -> str:
    def ms(v):
        return "n/a" if v is None else f"{v:.0f} ms"
    return (f"sent {s['frames']} frames in {s['seconds']:.1f} s = {s['fps']:.2f} fps "
            f"(speech {s['frames_speech']}, idle {s['frames_idle']}, off {s['frames_off']}, errors {s['frames_error']}); "
            f"latency mic->frame p50 {ms(s['latency_p50_ms'])} p95 {ms(s['latency_p95_ms'])} "
            f"(look-ahead {s['lookahead_ms']:.0f} ms included); late frames {s['late_frames']}, "
            f"audio overflows {s['audio_overflows']}, reopens {s['audio_reopens']}")


def build_agent(cfg: AgentConfig, source: AudioSource | None = None, on_frame: Callable[[FrameRecord], None] | None = None,
                state: AvatarState | None = None,
                controls: Callable[[AvatarState], list[Callable[[], None]]] | None = None) -> tuple[Agent, list[Callable[[], None]]]:
    """Wire the real parts from a config. Returns the agent and the close functions (reverse order).

    `controls(state)` starts whatever switches the avatar on and off (the OBS link, for `hygie run`)
    once the camera is open, and returns its close functions; the agent itself knows no controller.
    """
    from hygie.core.audio.capture import AudioInput
    from hygie.core.errors import HygieError
    from hygie.core.package.avatar import load_package
    from hygie.core.limits import parse_size
    from hygie.core.live.vcam import VirtualCamera

    if cfg.heap_tuning:  # before the avatar and the frame buffers are allocated (see heap.py)
        from hygie.core.live.heap import tune_heap
        tune_heap()
    closers: list[Callable[[], None]] = []
    try:
        avatar = load_package(cfg.avatar)
        try:
            from hygie.core.lips.model import LipModel
            from hygie.core.render.renderer import Renderer
        except ModuleNotFoundError as e:
            raise HygieError(f"this install lacks the live engine ({e.name}); reinstall hygie-avatar") from e
        size = parse_size(cfg.size) or tuple(avatar.frame_size)
        # Model and renderer first: loading native libraries (faiss, cv2, onnxruntime) while
        # PortAudio's ALSA/libpulse thread runs crashed the process here (segfault on import).
        lip = LipModel(avatar, threads=cfg.threads)
        renderer = Renderer(avatar, out_size=size)
        if source is None:
            source = AudioInput(cfg.input, block_ms=cfg.block_ms, watchdog_ms=cfg.watchdog_ms)
        source.start()
        closers.append(source.stop)
        closed = getattr(renderer, "closed_coeffs", None)
        from hygie.core.live.config import badge_config
        from hygie.core.provenance.live import LiveMarks

        marks = LiveMarks(avatar.meta, size, badge=badge_config(cfg) if cfg.badge else None,
                          reference=renderer.idle_frame(0))
        camera = VirtualCamera(size[0], size[1], cfg.fps, device=cfg.camera, backend=cfg.camera_backend,
                               **cfg.camera_kwargs)
        closers.append(camera.close)
        passthrough = None
        if cfg.audio_out:
            from hygie.core.audio.passthrough import AudioPassthrough
            passthrough = AudioPassthrough(cfg.audio_out)
            closers.append(passthrough.close)
        elif cfg.virtual_mic:
            passthrough = open_virtual_mic(closers)
        state = state or AvatarState()
        if controls is not None:
            closers.extend(controls(state))
        agent = Agent(cfg, source, lip, renderer, camera, avatar.mel_config, state=state, passthrough=passthrough,
                      closed_coeffs=closed, on_frame=on_frame, marks=marks)
        closers.reverse()
        return agent, closers
    except BaseException:
        for c in reversed(closers):
            try:
                c()
            except Exception:
                pass
        raise


def open_virtual_mic(closers: list[Callable[[], None]]) -> Any | None:
    """The voice, delayed like the video, into "Hygie Avatar Mic" (made here on Linux; VB-CABLE /
    BlackHole found by name elsewhere). None, with a warning, where there is no way to make one."""
    import sys

    from hygie.core.audio.capture import list_devices
    from hygie.core.audio.passthrough import AudioPassthrough
    from hygie.core.errors import DeviceError
    from hygie.core.live import virtual_mic as vm

    if sys.platform.startswith("linux"):
        if not vm.pulse_available():
            log.warning('no PulseAudio/PipeWire server (pactl info): "%s" not created, the call app gets the voice '
                        "before the face. Fix: %s, or pass --no-virtual-mic.", vm.MIC_NAME, vm.manual_fix("linux"))
            return None
        mic = vm.VirtualMic().create()
        closers.append(mic.remove)
        try:
            from hygie.core.live.voice_probe import VoiceProbe
            pt = AudioPassthrough(vm.SINK_NAME, backend="pulse", probe=VoiceProbe(vm.SOURCE_NAME))
        except DeviceError as e:
            mic.remove()
            raise DeviceError(f'"{vm.MIC_NAME}" was made but the voice cannot be played into it ({e}); '
                              "run with --no-virtual-mic meanwhile.") from e
        closers.append(pt.close)
        return pt
    found = vm.manual_device([d["name"] for d in list_devices("output")])
    if found is None:
        log.warning("no virtual microphone: %s; then the voice is delayed to match the face. "
                    "--no-virtual-mic silences this.", vm.manual_fix())
        return None
    pt = AudioPassthrough(found[0])
    closers.append(pt.close)
    log.info("voice delayed into %r: in the call app choose the microphone %r", found[0], found[1])
    return pt


def close_all(closers: list[Callable[[], None]]) -> None:
    for c in closers:
        try:
            c()
        except Exception as e:
            log.warning("while closing: %s", e)
