"""The whole live path with real parts: held-out GRID speech played into a PulseAudio null sink,
recorded from its monitor by the agent, the bundled avatar's lip model and renderer, frames through
the real pyvirtualcam API. The mouth re-detected in the frames sent must follow an offline render
of the same audio.
"""
import threading
import time

# native libraries load before PortAudio's threads start (importing them later crashed the process)
import cv2  # noqa: F401
import faiss  # noqa: F401
import onnxruntime  # noqa: F401
import soxr  # noqa: F401
import numpy as np
import pytest

import vcam_fixtures
from audio_fixtures import need_heldout, pulse  # noqa: F401

FPS = 30.0
SECONDS = 14.0


def _opening_series(frames: list[np.ndarray], reference: np.ndarray, tmp) -> np.ndarray:
    """Mouth opening (canonical IOD units) re-detected by MediaPipe on each frame; NaN without a face.

    FaceMesh runs in track_video's worker process: this process already holds PortAudio's and
    onnxruntime's threads, and loading MediaPipe beside them is not needed.
    """
    from hygie.core.face import geometry as G
    from hygie.core.media.encode import write_video_with_audio
    from hygie.models.evaluate import track_truth

    path = tmp / f"frames_{id(frames)}.mp4"
    write_video_with_audio(path, iter(frames), FPS, None, crf=12)
    return G.mouth_opening(track_truth(path, reference, workers=1).lips)


def _best_lag_r(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[int, float]:
    best = (0, -1.0)
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b[: len(b) - lag]) if lag >= 0 else (a[:lag], b[-lag:])
        n = min(len(x), len(y))
        x, y = x[:n], y[:n]
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() > 60:
            r = float(np.corrcoef(x[ok], y[ok])[0, 1])
            if r > best[1]:
                best = (lag, r)
    return best


@pytest.mark.audio
@pytest.mark.slow
def test_live_frames_follow_the_offline_render(pulse, tmp_path):
    from hygie.core.live.agent import build_agent, close_all
    from hygie.core.live.config import AgentConfig
    from hygie.core.audio.capture import AudioInput
    from hygie.core.errors import PackageError
    from hygie.core.lips.model import LipModel
    from hygie.core.media.audio_file import load_audio
    from hygie.core.audio.mel import LogMel
    from hygie.core.package.avatar import load_package
    from hygie.core.render.renderer import Renderer

    try:
        av = load_package(None)
    except PackageError as e:
        pytest.skip(f"bundled avatar absent: {e}")
    if not av.has_lip_model:
        pytest.skip("bundled avatar has no lip model")
    audio = load_audio(need_heldout())[: int(16000 * 10)]  # three GRID sentences with their silences
    src = AudioInput("pulse").start()
    frames: list[np.ndarray] = []
    try:
        time.sleep(2.0)  # the first PulseAudio callback is slow: open early
        cfg = AgentConfig(avatar=None, fps=FPS, duration=SECONDS, obs=False, camera_backend=vcam_fixtures.BACKEND)
        agent, closers = build_agent(cfg, source=src)
        backend = vcam_fixtures.RecordingBackend.instances[-1]
        backend.keep = lambda f: f.copy()
        threading.Timer(1.0, lambda: pulse.play_array(audio)).start()
        s = agent.run()
        close_all(closers)
        frames = backend.kept
    finally:
        src.stop()
    print(s)
    assert abs(len(frames) - FPS * SECONDS) <= 0.05 * FPS * SECONDS
    kinds = [r.kind for r in agent.records]
    assert kinds[:20].count("idle") >= 15  # before the speech starts: idle frames
    assert kinds.count("speech") > FPS * 4
    assert s["errors"] == 0 and s["latency_p95_ms"] is not None

    # offline: the same audio through the same model and renderer, at the camera's frame rate
    mel = LogMel(av.mel_config)(audio)
    coeffs = LipModel(av).predict(mel)
    r = Renderer(av)
    t = np.arange(int(len(audio) / 16000 * FPS)) / FPS
    idx = np.clip(av.mel_config.frame_at(t), 0, len(coeffs) - 1)
    offline = [r.render(coeffs[i], k) for k, i in enumerate(idx)]
    ref = av.track["reference"]
    live_open = _opening_series(frames, ref, tmp_path)
    off_open = _opening_series(offline, ref, tmp_path)
    lag, corr = _best_lag_r(live_open, off_open, max_lag=int(4 * FPS))
    print(f"live vs offline mouth opening: r={corr:.3f} at lag {lag} frames")
    assert corr >= 0.8
