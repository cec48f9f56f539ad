"""Voice-vs-face offset as a receiver sees it: mouth opening of the frames against the audio envelope.

Both signals are put on one clock (`time.perf_counter()`: when a frame left the camera API, when an
audio sample arrived at the app recording the microphone), on a 5 ms grid, standardised, and
cross-correlated over sliding windows. The lag of the peak is the offset: positive when the voice
arrives after the face, negative when it arrives before (people notice audio ahead of video from
~45 ms, ITU-R BT.1359). The mouth naturally moves a little before the sound it makes; `bias_s`,
measured on a render that is in sync by construction (the offline render of the same audio),
removes that from every window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_HZ = 200.0
BIN_S = 0.010  # audio envelope bins


def audio_envelope(x16k: np.ndarray, rate: int = 16000) -> np.ndarray:
    """Log energy (dB, floored at -70) of consecutive 10 ms bins."""
    n = int(rate * BIN_S)
    m = len(x16k) // n
    e = np.mean(np.asarray(x16k[: m * n], np.float64).reshape(m, n) ** 2, axis=1)
    return np.maximum(10 * np.log10(e + 1e-12), -70.0)


def _standardise(x: np.ndarray) -> np.ndarray | None:
    s = float(np.std(x))
    return None if s < 1e-9 else (x - np.mean(x)) / s


@dataclass
class Window:
    t: float  # window centre (perf_counter seconds)
    offset_s: float  # voice arrival - face arrival (bias removed)
    corr: float


def best_lag(video: np.ndarray, audio: np.ndarray, max_lag: int) -> tuple[float, float]:
    """Lag (grid steps, sub-step by a parabola) at which audio[t + lag] best matches video[t]; its r."""
    n = len(video)
    lags = np.arange(-max_lag, max_lag + 1)
    r = np.full(len(lags), -np.inf)
    for k, lag in enumerate(lags):
        a = audio[max_lag + lag: max_lag + lag + n]
        r[k] = float(np.dot(video, a)) / n
    k = int(np.argmax(r))
    frac = 0.0
    if 0 < k < len(r) - 1:
        d = r[k - 1] - 2 * r[k] + r[k + 1]
        frac = 0.0 if d == 0 else 0.5 * (r[k - 1] - r[k + 1]) / d
    return float(lags[k] + frac), float(r[k])


def offsets(frame_t: np.ndarray, opening: np.ndarray, env_t: np.ndarray, env_db: np.ndarray,
            window_s: float = 10.0, step_s: float = 5.0, max_lag_s: float = 0.3, bias_s: float = 0.0,
            min_corr: float = 0.2) -> list[Window]:
    """Offsets over sliding windows where both signals cover the window (and the peak is clear)."""
    frame_t, opening = np.asarray(frame_t, float), np.asarray(opening, float)
    env_t, env_db = np.asarray(env_t, float), np.asarray(env_db, float)
    if len(frame_t) < 2 or len(env_t) < 2:
        return []
    t0 = max(frame_t[0], env_t[0]) + max_lag_s
    t1 = min(frame_t[-1], env_t[-1]) - max_lag_s
    max_lag = int(round(max_lag_s * GRID_HZ))
    out = []
    start = t0
    while start + window_s <= t1:
        g = start + np.arange(int(window_s * GRID_HZ)) / GRID_HZ
        # frames are held on screen until the next one: zero-order hold
        idx = np.clip(np.searchsorted(frame_t, g, side="right") - 1, 0, len(frame_t) - 1)
        v = _standardise(opening[idx])
        ga = start - max_lag / GRID_HZ + np.arange(len(g) + 2 * max_lag) / GRID_HZ
        a = _standardise(np.interp(ga, env_t, env_db))
        if v is not None and a is not None:
            lag, r = best_lag(v, a, max_lag)
            if r >= min_corr:
                out.append(Window(start + window_s / 2, lag / GRID_HZ - bias_s, r))
        start += step_s
    return out


def summarise(windows: list[Window], minute_s: float = 60.0) -> dict:
    """p50 of the signed offset, p95 of its size, first-minute vs last-minute drift (ms)."""
    if not windows:
        return {"windows": 0}
    t = np.array([w.t for w in windows])
    o = 1000 * np.array([w.offset_s for w in windows])
    first = o[t <= t[0] + minute_s]
    last = o[t >= t[-1] - minute_s]
    return {"windows": len(o), "p50_ms": float(np.median(o)), "p95_abs_ms": float(np.percentile(np.abs(o), 95)),
            "p5_ms": float(np.percentile(o, 5)), "p95_ms": float(np.percentile(o, 95)),
            "drift_ms": float(np.median(last) - np.median(first)), "mean_corr": float(np.mean([w.corr for w in windows]))}
