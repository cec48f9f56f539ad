"""The live agent end to end with real audio (PulseAudio null sink) and the real pyvirtualcam API.

The lip model and renderer here are small stand-ins with the real interfaces
(loudness -> mouth opening, a drawn mouth) so the loop, clock, gating, latency and
recovery are tested on their own; test_agent_real.py runs the real models.
"""
import os
import signal
import threading
import time

import numpy as np
import pytest

import vcam_fixtures
from audio_fixtures import need_heldout, pulse  # noqa: F401
from hygie.core.live.agent import Agent
from hygie.core.live.state import AvatarState
from hygie.core.live.config import AgentConfig, build_config
from hygie.core.audio.capture import FileAudioSource
from hygie.core.audio.mel import MelConfig
from hygie.core.live.vcam import VirtualCamera

W, H, FPS = 160, 120, 30.0
MOUTH = (slice(70, 110), slice(60, 100))


class LoudnessLip:
    """Interface of hygie.core.lips.model.LipModel; coefficient 0 = loudness, `lookahead` frames late."""

    lookahead_s = 0.04

    def __init__(self):
        self.reset()

    def reset(self):
        self.hist = []

    def push(self, mel):
        out = []
        for row in mel:
            self.hist.append(float(np.mean(row)))
            la = int(round(self.lookahead_s * 100))
            if len(self.hist) > la:
                e = self.hist[-1 - la]
                c = np.zeros(8, np.float32)
                c[0] = np.clip((e + 9.0) / 6.0, 0, 1)
                out.append(c)
        self.hist = self.hist[-10:]
        return np.array(out, np.float32).reshape(-1, 8)


class DrawRenderer:
    """Interface of hygie.core.render.renderer.Renderer; draws a mouth whose height follows coefficient 0."""

    def __init__(self, fail_every: int = 0):
        self.fail_every = fail_every
        self.calls = 0

    def idle_frame(self, tick):
        f = np.full((H, W, 3), 120, np.uint8)
        f[5:10, 5 + tick % 20: 10 + tick % 20] = 255  # "breathing" loop marker
        return f

    def render(self, coeffs, tick):
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("simulated render failure")
        f = self.idle_frame(tick)
        h = 2 if coeffs is None else 2 + int(30 * float(coeffs[0]))
        f[90 - h // 2: 90 + h // 2 + 1, 65:95] = 20
        return f


def mouth_opening(frame):
    return float(np.sum(frame[MOUTH][..., 0] < 60)) / 30.0


def make_agent(source, duration, renderer=None, state=None, **cfg_kw):
    cam = VirtualCamera(W, H, FPS, backend=vcam_fixtures.BACKEND, keep=mouth_opening)
    cfg = AgentConfig(fps=FPS, duration=duration, report_every_s=2.0, **cfg_kw)
    agent = Agent(cfg, source, LoudnessLip(), renderer or DrawRenderer(), cam, MelConfig(), state=state)
    return agent, cam, vcam_fixtures.RecordingBackend.instances[-1]


@pytest.mark.audio
def test_slow_start_that_overflows_the_input_keeps_the_latency_true(pulse):
    """A start slower than the input ring (3 s, e.g. a busy machine) loses samples: the latency figure
    (and the voice delay built on it) must still be measured from the right samples, not stay skewed."""
    from hygie.core.audio.capture import AudioInput
    from hygie.core.media.audio_file import load_audio

    audio = load_audio(need_heldout())[: 16000 * 9]
    src = AudioInput("pulse").start()
    try:
        pulse.play_array(np.concatenate([np.zeros(16000 * 3, np.float32), audio]))
        time.sleep(5.0)  # nobody reads: the 3-s input ring overflows, as on a slow start
        agent, cam, backend = make_agent(src, duration=8.0)
        s = agent.run()
    finally:
        src.stop()
        cam.close()
    assert s["audio_overflows"] >= 1
    assert s["latency_samples"] > FPS * 3
    # a skew would add the lost seconds to every sample for the rest of the run
    assert s["lookahead_ms"] < s["latency_p50_ms"] < s["lookahead_ms"] + 120, s


@pytest.mark.audio
def test_live_from_pulseaudio_frames_idle_speech_latency(pulse):
    from hygie.core.audio.capture import AudioInput
    from hygie.core.media.audio_file import load_audio

    audio = load_audio(need_heldout())[: 16000 * 9]  # three GRID sentences, with their silences
    src = AudioInput("pulse").start()
    try:
        time.sleep(2.0)  # first PulseAudio callback is slow
        agent, cam, backend = make_agent(src, duration=12.0)
        threading.Timer(1.5, lambda: pulse.play_array(audio)).start()
        s = agent.run()
    finally:
        src.stop()
        cam.close()
    print(s)
    n = len(backend.times)
    assert abs(n - FPS * 12.0) <= 0.05 * FPS * 12.0, n
    assert s["fps"] == pytest.approx(FPS, rel=0.05)
    assert np.max(np.diff(backend.times)) < 0.2  # no burst gaps
    kinds = [r.kind for r in agent.records]
    assert kinds[:30].count("idle") >= 25  # before playback: silence -> idle frames
    assert kinds.count("speech") > FPS * 3
    opening = np.array(backend.kept)
    assert opening[np.array(kinds) == "speech"].mean() > opening[np.array(kinds) == "idle"].mean() + 1
    assert s["latency_p50_ms"] is not None and s["latency_samples"] > FPS * 5
    # look-ahead is part of the figure: no frame can show a mouth sooner than the look-ahead after its sound
    assert s["latency_p50_ms"] >= s["lookahead_ms"]
    assert s["errors"] == 0


@pytest.mark.audio
def test_agent_survives_sound_server_restart(pulse):
    from hygie.core.audio.capture import AudioInput
    from hygie.core.media.audio_file import load_audio

    audio = load_audio(need_heldout())[: 16000 * 30]
    src = AudioInput("pulse", watchdog_ms=300, open_grace_s=3.0).start()
    try:
        time.sleep(2.0)
        agent, cam, backend = make_agent(src, duration=16.0)

        def unplug_and_replug():
            pulse.play_array(audio)
            time.sleep(3.0)
            pulse.kill()
            time.sleep(2.0)
            pulse.start()
            time.sleep(4.0)  # the first callback after reopening takes ~2 s
            pulse.play_array(audio)

        t = threading.Thread(target=unplug_and_replug)
        threading.Timer(0.5, t.start).start()
        s = agent.run()
    finally:
        src.stop()
        cam.close()
    print(s)
    assert np.max(np.diff(backend.times)) < 0.2  # frames never stopped
    assert abs(len(backend.times) - FPS * 16) <= 0.05 * FPS * 16
    assert s["audio_reopens"] >= 1
    recs = list(agent.records)
    t_kill = recs[0].t_sent + 0.5 + 3.0
    after = [r for r in recs if r.t_sent > t_kill + 8.0]
    assert any(r.kind == "speech" for r in after), "no speech frames after the sound server came back"


def test_bad_frames_give_idle_frames_never_a_crash():
    src = FileAudioSource(str(need_heldout()))
    agent, cam, backend = make_agent(src, duration=3.0, renderer=DrawRenderer(fail_every=7))
    s = agent.run()
    cam.close()
    assert s["errors"] > 5 and s["frames_error"] == s["errors"]
    assert abs(len(backend.times) - 90) <= 5


def test_switched_off_sends_idle_frames_and_eases():
    state = AvatarState()
    src = FileAudioSource(str(need_heldout()))
    agent, cam, backend = make_agent(src, duration=4.0, state=state)
    threading.Timer(2.0, lambda: state.set(on=False, reason="test")).start()
    agent.run()
    cam.close()
    recs = list(agent.records)
    late = [r for r in recs if r.t_sent > recs[0].t_sent + 2.3]
    assert late and all(r.kind == "off" for r in late)
    w = np.array([r.weight for r in recs])
    assert np.max(np.abs(np.diff(w))) <= (1 / FPS) / 0.1 * 1.3  # ramps over ~100 ms (3 frames): no pop
    assert 0 < np.sum((w > 0) & (w < 1))  # and really passes through in-between shapes


def test_sigterm_stops_cleanly_with_summary():
    src = FileAudioSource(str(need_heldout()))
    agent, cam, backend = make_agent(src, duration=None)
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    t0 = time.time()
    s = agent.run()
    cam.close()
    assert time.time() - t0 < 5 and s["frames"] > 30
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back in place


def test_config_file_then_flags(tmp_path, monkeypatch):
    p = tmp_path / "config.toml"
    p.write_text('[run]\ninput = "USB"\nfps = 25\nsize = "1280x720"\n')
    monkeypatch.setenv("HYGIE_CONFIG", str(p))
    cfg = build_config({"fps": 30.0, "input": None})
    assert cfg.input == "USB" and cfg.fps == 30.0 and cfg.size == "1280x720"
    p.write_text('[run]\nfpss = 25\n')
    from hygie.core.errors import HygieError
    with pytest.raises(HygieError, match="unknown setting"):
        build_config({})
