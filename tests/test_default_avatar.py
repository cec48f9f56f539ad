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
