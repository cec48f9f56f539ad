"""Reproducible microphone and room degradations of a voice (numpy only, no downloads).

Each degradation is a named, seeded function of 16 kHz mono audio: the same name and seed give the
same samples. Used by `hygie eval --degrade` (held-out r under each) and, in the log-mel domain, by
training augmentation (`hygie.models.dataset.Augmenter`, which mirrors the same families).

- reverb_small / reverb_large: a synthetic room impulse response made here: a direct path plus
  exponentially decaying white noise (RT60 0.35 s / 0.8 s, direct-to-reverberant ratio 6 / 0 dB),
  seeded; the convolved signal is scaled back to the input's RMS.
- pink_30/20/10, white_30/20/10: additive pink (1/f power) or white noise at that SNR, the SNR being
  the ratio of the signal's power to the noise's over the whole file (the figure the test checks).
- telephone: band-pass 300-3400 Hz and a round trip through 8 kHz.
- cheap_mic: a laptop microphone: high-pass 250 Hz, a +6 dB presence peak near 3 kHz, low-pass 6 kHz.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)

SR = 16000


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def room_ir(rt60: float, drr_db: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A seeded synthetic room impulse response: unit direct path + exponentially decaying noise tail."""
    rng = np.random.default_rng(seed)
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * sr)] = 0.0  # first reflections after ~2 ms
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def _fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = len(x) + len(h) - 1
    nfft = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[: len(x)]
    return y


def reverb(x: np.ndarray, rt60: float, drr_db: float, seed: int = 0, sr: int = SR) -> np.ndarray:
    y = _fft_convolve(np.asarray(x, np.float64), room_ir(rt60, drr_db, sr, seed))
    return (y * _rms(x) / _rms(y)).astype(np.float32)


def coloured_noise(n: int, colour: str, seed: int = 0) -> np.ndarray:
    """Unit-RMS white or pink (power ∝ 1/f) noise, seeded."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n)
    if colour == "pink":
        spec = np.fft.rfft(w)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        w = np.fft.irfft(spec / np.sqrt(f), n)
    elif colour != "white":
        raise ValueError(f"unknown noise colour {colour!r}; use 'white' or 'pink'.")
    return w / _rms(w)


def add_noise(x: np.ndarray, snr_db: float, colour: str = "pink", seed: int = 0) -> np.ndarray:
    """x + noise whose power is the signal's power (whole file) minus snr_db."""
    noise = coloured_noise(len(x), colour, seed) * _rms(x) * 10 ** (-snr_db / 20)
    return (np.asarray(x, np.float64) + noise).astype(np.float32)


def _gain_curve(x: np.ndarray, gain: Callable[[np.ndarray], np.ndarray], sr: int = SR) -> np.ndarray:
    spec = np.fft.rfft(np.asarray(x, np.float64))
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return np.fft.irfft(spec * gain(f), len(x)).astype(np.float32)


def telephone_gain(f: np.ndarray) -> np.ndarray:
    """Magnitude of a 300-3400 Hz telephone band (4th-order-like skirts)."""
    f = np.maximum(np.asarray(f, np.float64), 1e-3)
    return 1 / np.sqrt(1 + (300 / f) ** 8) / np.sqrt(1 + (f / 3400) ** 8)


def cheap_mic_gain(f: np.ndarray) -> np.ndarray:
    """High-pass 250 Hz, +6 dB presence peak near 3 kHz (one octave wide), low-pass 6 kHz."""
    f = np.maximum(np.asarray(f, np.float64), 1e-3)
    peak = 10 ** (6 / 20 * np.exp(-0.5 * (np.log2(f / 3000) / 0.5) ** 2))
    return peak / np.sqrt(1 + (250 / f) ** 4) / np.sqrt(1 + (f / 6000) ** 8)


def telephone(x: np.ndarray, sr: int = SR) -> np.ndarray:
    import soxr

    y = _gain_curve(x, telephone_gain, sr)
    y = soxr.resample(soxr.resample(y, sr, 8000), 8000, sr)[: len(x)]
    return np.pad(y, (0, len(x) - len(y))).astype(np.float32)


def cheap_mic(x: np.ndarray, sr: int = SR) -> np.ndarray:
    return _gain_curve(x, cheap_mic_gain, sr)


def _registry() -> dict[str, Callable[[np.ndarray, int], np.ndarray]]:
    d: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
        "reverb_small": lambda x, s: reverb(x, 0.35, 6.0, seed=s),
        "reverb_large": lambda x, s: reverb(x, 0.8, 0.0, seed=s),
    }
    for colour in ("pink", "white"):
        for snr in (30, 20, 10):
            d[f"{colour}_{snr}"] = (lambda c, v: (lambda x, s: add_noise(x, v, c, seed=s)))(colour, snr)
    d["telephone"] = lambda x, s: telephone(x)
    d["cheap_mic"] = lambda x, s: cheap_mic(x)
    return d


DEGRADATIONS = tuple(_registry())


def degrade(audio: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """The named degradation of 16 kHz mono `audio` (reproducible for a given seed)."""
    reg = _registry()
    if name not in reg:
        raise ValueError(f"unknown degradation {name!r}; choose from {', '.join(reg)}.")
    y = reg[name](np.asarray(audio, np.float32), seed)
    return np.nan_to_num(y).astype(np.float32)
