"""Articulation measures (std/speed ratios, closures, jitter) and the reproducible degradations, on known signals."""
from __future__ import annotations

import numpy as np
import pytest

from hygie.models.degrade import DEGRADATIONS, add_noise, degrade, room_ir, telephone_gain
from hygie.models.evaluate import (articulation, closure_runs, closures, hf_power, jitter_ratio, speech_stats,
                                   speed)

FPS = 25.0


def _talking(n: int = 500, seed: int = 0) -> np.ndarray:
    """A smooth opening signal (syllable-rate movement, < 6 Hz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FPS
    return 0.05 + 0.03 * np.sin(2 * np.pi * 3.1 * t) + 0.01 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 6))


def test_constant_prediction_has_zero_speed():
    true = _talking()
    ok = np.ones(len(true), bool)
    const = np.full_like(true, 0.04)
    assert speed(const, ok) == 0.0
    a = articulation(const, true, ok)
    assert a["speed_ratio"] == 0.0 and a["std_ratio"] == 0.0


@pytest.mark.parametrize("scale", [0.5, 0.9, 1.3])
def test_scaled_prediction_has_the_scale_as_std_and_speed_ratio(scale):
    true = _talking()
    ok = np.ones(len(true), bool)
    ok[100:110] = False  # unusable frames are skipped the same way on both sides
    pred = true.mean() + scale * (true - true.mean()) + 0.01  # an offset changes neither
    a = articulation(pred, true, ok)
    assert a["std_ratio"] == pytest.approx(scale, rel=1e-9)
    assert a["speed_ratio"] == pytest.approx(scale, rel=1e-9)
    assert jitter_ratio(pred, true, ok, FPS) == pytest.approx(scale ** 2, rel=1e-6)


def test_jitter_sees_fast_wobble_only():
    true = _talking()
    ok = np.ones(len(true), bool)
    assert hf_power(true, ok, FPS, 8.0) < 1e-3 * hf_power(true, ok, FPS, 0.5)  # smooth: nothing above 8 Hz
    t = np.arange(len(true)) / FPS
    wobbly = true + 0.002 * np.sin(2 * np.pi * 10.0 * t)  # a 10 Hz tremor of 2 thousandths of IOD
    smooth_shift = true + 0.002 * np.sin(2 * np.pi * 2.0 * t)  # the same amplitude at 2 Hz is not jitter
    assert jitter_ratio(wobbly, true, ok, FPS) > 100
    assert jitter_ratio(smooth_shift, true, ok, FPS) == pytest.approx(1.0, abs=0.05)


def test_closure_detector_finds_synthetic_closures_inside_speech():
    n = 200
    true = np.full(n, 0.08)
    closed_max = 0.01
    true[20:23] = 0.002  # a 3-frame closure inside speech: found
    true[60:61] = 0.002  # 1 frame: too short
    true[100:104] = 0.003  # a 4-frame closure inside speech: found
    true[150:200] = 0.002  # the closed mouth of a final pause: no speech after it
    before = np.ones(n, bool)
    after = np.ones(n, bool)
    after[150:] = False
    ok = np.ones(n, bool)
    runs = closure_runs(true, ok, closed_max, before, after, min_frames=2)
    assert runs == [(20, 23), (100, 104)]
    pred = np.full(n, 0.07)
    pred[23] = 0.005  # closes one frame after the real closure ends: caught (tolerance 1)
    c = closures(pred, runs, closed_max, tolerance=1)
    assert c["closures"] == 2 and c["caught"] == 0.5
    pred[98] = 0.005  # two frames early: not caught
    assert closures(pred, runs, closed_max, tolerance=1)["caught"] == 0.5
    pred[101] = 0.005
    assert closures(pred, runs, closed_max, tolerance=1)["caught"] == 1.0


def test_speech_stats_range_of_a_known_signal():
    x = np.linspace(0.0, 1.0, 101)
    s = speech_stats(x, np.ones(101, bool), np.ones(101, bool), FPS, 8.0)
    assert s["range"] == pytest.approx(0.9) and s["speed"] == pytest.approx(0.01)


def _voice(seconds: float = 3.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * env * (np.sin(2 * np.pi * 140 * t) + 0.3 * rng.standard_normal(len(t)))).astype(np.float32)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradations_are_reproducible(name):
    x = _voice()
    a, b = degrade(x, name, seed=3), degrade(x, name, seed=3)
    assert a.shape == x.shape and a.dtype == np.float32 and np.array_equal(a, b) and np.all(np.isfinite(a))
    assert not np.allclose(a, x)


@pytest.mark.parametrize("snr", [30.0, 20.0, 10.0])
@pytest.mark.parametrize("colour", ["pink", "white"])
def test_noise_reaches_the_asked_snr(snr, colour):
    x = _voice()
    y = add_noise(x, snr, colour, seed=0)
    noise = y.astype(np.float64) - x
    got = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert got == pytest.approx(snr, abs=0.05)


def test_pink_noise_falls_3db_per_octave_and_rooms_differ():
    from hygie.models.degrade import coloured_noise

    p = np.abs(np.fft.rfft(coloured_noise(2 ** 16, "pink", seed=0))) ** 2
    f = np.fft.rfftfreq(2 ** 16, 1 / 16000)
    band = lambda lo: p[(f >= lo) & (f < 2 * lo)].mean()  # noqa: E731
    assert 10 * np.log10(band(500) / band(1000)) == pytest.approx(3.0, abs=0.5)
    small, large = room_ir(0.35, 6.0), room_ir(0.8, 0.0)
    assert len(large) > 2 * len(small) and small[0] == large[0] == 1.0
    # direct-to-reverberant ratio as asked
    assert 10 * np.log10(1 / np.sum(small[1:] ** 2)) == pytest.approx(6.0, abs=1e-6)
    assert np.array_equal(room_ir(0.35, 6.0, seed=1), room_ir(0.35, 6.0, seed=1))
    assert not np.array_equal(room_ir(0.35, 6.0, seed=1), room_ir(0.35, 6.0, seed=2))


def test_telephone_band_removes_low_and_high_frequencies():
    assert telephone_gain(np.array([1000.0]))[0] > 0.99
    assert telephone_gain(np.array([100.0]))[0] < 0.02 and telephone_gain(np.array([6000.0]))[0] < 0.15
    rng = np.random.default_rng(0)
    x = rng.standard_normal(32000).astype(np.float32) * 0.1
    y = degrade(x, "telephone")
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    px, py = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(y)) ** 2
    assert py[f > 4500].sum() < 1e-3 * px[f > 4500].sum()
    assert py[(f > 800) & (f < 2500)].sum() > 0.8 * px[(f > 800) & (f < 2500)].sum()
