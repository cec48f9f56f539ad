"""Voice activity per video frame, from the audio's energy against its own noise floor.

Used by enrollment (which footage frames are speaking, which listening) and by offline
renders (which pool of body frames the walker should prefer). Deliberately simple: a short-time
energy in dB, a floor taken from the quiet end of its distribution, a threshold above that floor,
and a hangover so that the gaps between words do not count as silence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActivityConfig:
    window_s: float = 0.025
    above_floor_db: float = 12.0  # voice is this much louder than the floor (10th percentile)
    min_db: float = -55.0  # anything quieter is silence, whatever the floor
    hangover_s: float = 0.3  # keep "voice" this long after it stops (gaps between words)
    min_silence_s: float = 0.2  # shorter silences than this are merged into speech


def voice_activity(audio: np.ndarray, sr: int, fps: float, n_frames: int,
                   cfg: ActivityConfig | None = None) -> np.ndarray:
    """(n_frames,) bool: voice present at each video frame (frame k at k / fps seconds)."""
    cfg = cfg or ActivityConfig()
    audio = np.asarray(audio, np.float32).ravel()
    n = max(1, int(cfg.window_s * sr))
    if len(audio) < n or n_frames <= 0:
        return np.zeros(max(n_frames, 0), bool)
    fr = audio[: len(audio) // n * n].reshape(-1, n).astype(np.float64)
    db = 10 * np.log10((fr ** 2).mean(1) + 1e-12)
    floor = np.percentile(db, 10)
    on = (db > max(floor + cfg.above_floor_db, cfg.min_db))
    hop_s = n / sr
    hang = int(round(cfg.hangover_s / hop_s))
    if hang > 0 and on.any():
        # each "on" window keeps the next `hang` windows on (a running max over the past)
        idx = np.flatnonzero(on)
        on2 = np.zeros_like(on)
        for a in idx:
            on2[a:a + hang + 1] = True
        on = on2
    on = _fill_short_gaps(on, int(round(cfg.min_silence_s / hop_s)))
    t = (np.arange(n_frames) / fps) / hop_s
    return on[np.clip(t.astype(np.int64), 0, len(on) - 1)]


def _fill_short_gaps(on: np.ndarray, min_len: int) -> np.ndarray:
    """Silences shorter than min_len windows, between two voiced stretches, become voiced."""
    out = on.copy()
    n = len(on)
    i = 0
    while i < n:
        if not on[i]:
            j = i
            while j < n and not on[j]:
                j += 1
            if i > 0 and j < n and j - i < min_len:
                out[i:j] = True
            i = j
        else:
            i += 1
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[a, b) stretches where mask is True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(d[::2].tolist(), d[1::2].tolist()))
