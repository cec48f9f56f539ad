"""The receiver-side offset estimator on real data: the bundled avatar's lip model run on held-out GRID
speech gives the mouth opening; the audio envelope shifted by a known amount must be read back."""
import numpy as np
import pytest

from conftest import GRID_HELDOUT, need
from hygie.core.live.av_offset import audio_envelope, offsets, summarise


@pytest.fixture(scope="module")
def bundled():
    from hygie.core.errors import PackageError
    from hygie.core.package.avatar import load_package

    try:
        return load_package(None)
    except PackageError as e:
        pytest.skip(f"bundled avatar absent: {e}")


@pytest.fixture(scope="module")
def speech40():
    from hygie.core.media.audio_file import load_audio

    return load_audio(need(GRID_HELDOUT), 16000)[: 16000 * 40]


def _opening(av, audio: np.ndarray, t0: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """Frame times on a perf_counter-like clock from t0, and the lip model's mouth opening at each."""
    from hygie.core.audio.mel import LogMel
    from hygie.core.face import geometry as G
    from hygie.core.lips.model import LipModel

    coeffs = LipModel(av).predict(LogMel(av.mel_config)(audio))
    t = t0 + np.arange(int(len(audio) / 16000 * 30)) / 30
    idx = np.clip(av.mel_config.frame_at(t - t0), 0, len(coeffs) - 1)
    return t, G.mouth_opening(av.coeffs_to_lips(coeffs[idx]))


@pytest.mark.parametrize("shift_ms", [-90.0, 0.0, 45.0])
def test_known_offset_is_read_back(shift_ms, bundled, speech40):
    from hygie.core.bench.av_offset import offline_bias

    bias = offline_bias(bundled, speech40, 30.0)
    assert abs(bias) < 0.04  # the model's mouth and the voice are nearly simultaneous by construction
    t, opening = _opening(bundled, speech40)
    env = audio_envelope(speech40)
    env_t = 100.0 + (np.arange(len(env)) + 0.5) * 0.010 + shift_ms / 1000  # the voice arrives shift_ms later
    s = summarise(offsets(t, opening, env_t, env, bias_s=bias))
    assert s["windows"] >= 5
    assert abs(s["p50_ms"] - shift_ms) <= 5.0, s


def test_looped_speech_is_debiased_stretch_by_stretch(bundled, speech40):
    """The estimator reads a content-dependent offset on an in-sync render; a looped run takes off, window by
    window, the bias of the stretch of the file it heard: every window then reads the true shift."""
    from hygie.core.bench.av_offset import debias, offline_bias_curve

    curve = offline_bias_curve(bundled, speech40, 30.0)
    assert len(curve[0]) >= 20 and np.ptp(curve[1]) < 0.05
    run = np.concatenate([speech40] * 3)  # three passes over the file, as the bench's player loops it
    t, opening = _opening(bundled, run)
    env = audio_envelope(run)
    shift = 0.030
    env_t = 100.0 + (np.arange(len(env)) + 0.5) * 0.010 + shift
    w = debias(offsets(t, opening, env_t, env), np.array([100.0, 140.0, 180.0]), curve, 40.0)
    err = 1000 * (np.array([x.offset_s for x in w]) - shift)
    assert len(w) >= 15 and np.percentile(np.abs(err), 95) <= 5.0, err
