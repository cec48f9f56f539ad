"""The bundled default avatar: shipped, verified, small, good, and the README's main job works on it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hygie.core.package.avatar import load_package

from hygie.core.package.bundled import default_avatar_path


def test_default_avatar_is_shipped_verified_and_small():
    av = load_package(None)  # verifies every sha256
    assert av.has_lip_model
    size = sum(p.stat().st_size for p in default_avatar_path().iterdir())
    assert size <= 20 * 2**20
    assert "GRID corpus" in av.meta["licence"] and "CC BY 4.0" in av.meta["licence"]


def test_default_avatar_quality_is_recorded_and_beats_the_baselines():
    q = json.loads((default_avatar_path() / "quality.json").read_text())
    m = q["lip_model"]
    model = m["model (streaming)"]
    assert model["lag"] == 0
    assert model["opening_r"] > m["ridge"]["opening_r"] > m["loudness"]["opening_r"]
    assert model["lmd"] < m["ridge"]["lmd"] < m["mean mouth"]["lmd"]
    assert q["other_voices_mean_opening_r"]["model (streaming)"] > q["other_voices_mean_opening_r"]["loudness"]


@pytest.mark.slow
def test_default_avatar_quality_recomputed_on_held_out_footage(tmp_path):
    """Not the recorded figures: the evaluation run again, here, on footage the model never saw."""
    from conftest import GRID_HELDOUT, need
    from hygie.models.evaluate import evaluate

    av = load_package(None)
    res = evaluate(av, need(GRID_HELDOUT), tmp_path)
    got = res["methods"]
    model = got["model (streaming)"]
    assert model["lag"] == 0 and model["opening_r"] >= 0.85
    assert model["opening_r"] > got["ridge"]["opening_r"] and model["opening_r"] > got["loudness"]["opening_r"]
    assert model["lmd"] < got["ridge"]["lmd"] < got["mean mouth"]["lmd"]
    recorded = json.loads((default_avatar_path() / "quality.json").read_text())["lip_model"]["model (streaming)"]
    assert model["opening_r"] == pytest.approx(recorded["opening_r"], abs=0.01)
    assert model["lmd"] == pytest.approx(recorded["lmd"], abs=0.0005)


def test_readme_main_job_renders_the_demo_sentence(tmp_path):
    """`hygie render -o demo.mp4` with nothing else: default avatar, bundled sentence, sound and picture."""
    import av as pyav

    from hygie.core.cli.main import main
    from hygie.core.media.audio_file import load_audio
    from hygie.core.package.bundled import demo_speech_path

    out = tmp_path / "demo.mp4"
    assert main(["render", "-o", str(out)]) == 0
    with pyav.open(str(out)) as c:
        assert c.streams.video and c.streams.audio
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(v))
    speech_s = len(load_audio(demo_speech_path())) / 16000
    assert n == pytest.approx(speech_s * load_package(None).fps, abs=3)
    sound = load_audio(out)
    assert len(sound) / 16000 == pytest.approx(speech_s, abs=0.15)
    assert np.sqrt(np.mean(sound ** 2)) > 0.01
    # what a viewer sees: the mouth re-detected on the mp4 opens and closes with the speech
    from detect import corr, detected_opening, envelope_at_frames, video_frames

    frames = video_frames(out)
    opening = detected_opening(frames, load_package(None).track["reference"])
    assert np.isfinite(opening).mean() > 0.95
    assert np.nanstd(opening) > 0.02  # IOD: the mouth really moves
    env = envelope_at_frames(load_audio(demo_speech_path()), len(frames), load_package(None).fps)
    assert corr(opening, env) > 0.4


def test_silence_renders_a_still_closed_mouth(tmp_path):
    import wave

    from detect import detected_opening, video_frames
    from hygie.core.cli.main import main

    quiet = tmp_path / "quiet.wav"
    rng = np.random.default_rng(0)
    with wave.open(str(quiet), "wb") as w:  # 3 s of faint room hiss
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((rng.normal(0, 30, 48000)).astype("<i2").tobytes())
    out = tmp_path / "still.mp4"
    assert main(["render", "--audio", str(quiet), "-o", str(out)]) == 0
    av = load_package(None)
    opening = detected_opening(video_frames(out), av.track["reference"])
    closed = float(np.nanpercentile(np.where(av.track["usable"], av.track["opening"], np.nan), 10))
    assert np.isfinite(opening).mean() > 0.95
    assert np.nanstd(opening) < 0.006  # still: within a few times MediaPipe's own jitter
    assert np.nanmedian(opening) < closed + 0.02  # and closed
