"""The receiver-side offset estimator on real data: the bundled avatar's lip model run on held-out GRID
speech gives the mouth opening; the audio envelope shifted by a known amount must be read back."""
import numpy as np
import pytest

from conftest import GRID_HELDOUT, need


@pytest.mark.parametrize("shift_ms", [-90.0, 0.0, 45.0])
def test_known_offset_is_read_back(shift_ms):
    from hygie.core.bench.av_offset import offline_bias
    from hygie.core.face import geometry as G
    from hygie.core.errors import PackageError
    from hygie.core.lips.model import LipModel
    from hygie.core.live.av_offset import audio_envelope, offsets, summarise
    from hygie.core.media.audio_file import load_audio
    from hygie.core.audio.mel import LogMel
    from hygie.core.package.avatar import load_package

    try:
        av = load_package(None)
    except PackageError as e:
        pytest.skip(f"bundled avatar absent: {e}")
    audio = load_audio(need(GRID_HELDOUT), 16000)[: 16000 * 40]
    bias = offline_bias(av, audio, 30.0)
    assert abs(bias) < 0.04  # the model's mouth and the voice are nearly simultaneous by construction
    coeffs = LipModel(av).predict(LogMel(av.mel_config)(audio))
    t = 100.0 + np.arange(int(len(audio) / 16000 * 30)) / 30  # frames on a perf_counter-like clock
    idx = np.clip(av.mel_config.frame_at(t - 100.0), 0, len(coeffs) - 1)
    opening = G.mouth_opening(av.coeffs_to_lips(coeffs[idx]))
    env = audio_envelope(audio)
    env_t = 100.0 + (np.arange(len(env)) + 0.5) * 0.010 + shift_ms / 1000  # the voice arrives shift_ms later
    s = summarise(offsets(t, opening, env_t, env, bias_s=bias))
    assert s["windows"] >= 5
    assert abs(s["p50_ms"] - shift_ms) <= 5.0, s
