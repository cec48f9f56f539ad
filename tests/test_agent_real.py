"""The live agent with the real lip model and renderer: the mouth it sends follows the audio
exactly as the offline path does.

Needs an avatar package with a trained lip model: HYGIE_LIVE_AVATAR=PKG (or the bundled
default avatar once it ships); skipped with the reason otherwise.
"""
import os

import numpy as np
import pytest

import vcam_fixtures
from audio_fixtures import need_heldout


def _avatar_with_lips():
    from hygie.core.errors import PackageError
    from hygie.core.package.avatar import load_package
    path = os.environ.get("HYGIE_LIVE_AVATAR")
    try:
        av = load_package(path) if path else load_package(None)
    except PackageError as e:
        pytest.skip(f"no avatar with a lip model ({e}); set HYGIE_LIVE_AVATAR=PKG")
    if not av.has_lip_model:
        pytest.skip(f"{av.path} has no lip model; set HYGIE_LIVE_AVATAR to a trained package")
    return av


def test_live_mouth_follows_offline_prediction():
    from hygie.core.live.agent import build_agent, close_all
    from hygie.core.live.config import AgentConfig
    from hygie.core.audio.capture import FileAudioSource
    from hygie.core.lips.model import LipModel
    from hygie.core.media.audio_file import load_audio
    from hygie.core.audio.mel import LogMel

    av = _avatar_with_lips()
    path = str(need_heldout())
    seconds = 12.0
    cfg = AgentConfig(avatar=str(av.path), duration=seconds, obs=False, camera_backend=vcam_fixtures.BACKEND,
                      fade_ms=1.0, vad_hangover_ms=0.0)
    src = FileAudioSource(path, loop=False)
    agent, closers = build_agent(cfg, source=src)
    shown = []  # (mel index the frame stands for, coefficients rendered)
    render = agent.renderer.render

    def spy(coeffs, tick):
        if coeffs is not None:
            shown.append((agent._coeffs_mel_idx, np.array(agent._coeffs)))
        return render(coeffs, tick)
    agent.renderer.render = spy
    try:
        s = agent.run()
    finally:
        close_all(closers)
    backend = vcam_fixtures.RecordingBackend.instances[-1]
    assert abs(len(backend.times) - cfg.fps * seconds) <= 0.05 * cfg.fps * seconds
    assert s["latency_p50_ms"] is not None and s["latency_p50_ms"] >= s["lookahead_ms"]
    assert s["frames_idle"] > 0 and s["frames_speech"] > cfg.fps * 3

    audio = load_audio(path)[: int(16000 * (seconds + 1))]
    offline = LipModel(av).predict(LogMel(av.mel_config)(audio))
    idx = np.array([i for i, _ in shown])
    live = np.stack([c for _, c in shown])
    ok = idx < len(offline)
    a, b = live[ok, 0], offline[idx[ok], 0]  # first PCA mode: the mouth opening
    print("frames", len(backend.times), "live/offline opening r", np.corrcoef(a, b)[0, 1], s)
    # both really move (a model returning zeros, or a frozen live path, would correlate nothing) ...
    assert np.std(b) > 0.2 * np.std(offline[:, 0]) > 0 and 0.8 < np.std(a) / np.std(b) < 1.25
    # ... and live equals offline, frame for frame, at lag 0 (the same streaming model on the same audio)
    lags = {k: np.corrcoef(a[max(k, 0):len(a) + min(k, 0)], b[max(-k, 0):len(b) - max(k, 0)])[0, 1] for k in (-2, -1, 0, 1, 2)}
    assert lags[0] >= 0.98 and max(lags, key=lags.get) == 0, lags
