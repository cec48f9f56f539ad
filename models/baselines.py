"""Baselines the lip model must beat, fitted on the enrollment package (numpy only).

- mean mouth: always the PCA mean (coefficients 0);
- loudness: per-component linear regression from the frame loudness (RMS in dB, from the mel power);
- ridge: ridge regression from a +-100 ms window of standardised log-mel to the PCA coefficients.
All predict coefficients at video-frame times from a log-mel matrix of the same audio.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from hygie.core.errors import HygieError
from hygie.core.audio.mel import MelConfig

log = logging.getLogger(__name__)

NAMES = ("mean mouth", "loudness", "ridge")


def loudness_db(mel: np.ndarray) -> np.ndarray:
    """Per mel frame: 10*log10 of the total mel power (a spectral RMS level in dB, arbitrary offset)."""
    return (10.0 / np.log(10.0)) * np.log(np.exp(np.asarray(mel, np.float64)).sum(1) + 1e-12)


def frame_loudness(mel: np.ndarray, times: np.ndarray, cfg: MelConfig, half: int = 2) -> np.ndarray:
    """Loudness (dB) at video-frame times, averaged in power over +-half mel frames (+-20 ms)."""
    p = np.exp(np.asarray(mel, np.float64)).sum(1)
    idx = cfg.frame_at(times)
    out = np.empty(len(times))
    for i, c in enumerate(idx):
        a, b = max(0, c - half), min(len(p), c + half + 1)
        out[i] = 10 * np.log10(p[a:b].mean() + 1e-12) if b > a else 10 * np.log10(p[-1] + 1e-12)
    return out


def mel_window(mel: np.ndarray, times: np.ndarray, cfg: MelConfig, half_ms: float = 100.0, step: int = 2) -> np.ndarray:
    """(N, W*M) stacked mel frames at offsets -half..+half (every `step` frames) around each time (edge-clamped)."""
    h = int(round(half_ms / 1000 * cfg.frame_rate))
    offs = np.arange(-h, h + 1, step)
    idx = np.clip(cfg.frame_at(times)[:, None] + offs[None], 0, len(mel) - 1)
    return mel[idx].reshape(len(times), -1)


@dataclass
class Baselines:
    mel_config: MelConfig
    n_components: int
    loud_w: np.ndarray  # (2, K)
    ridge_mu: np.ndarray
    ridge_sd: np.ndarray
    ridge_w: np.ndarray  # (D+1, K)
    ridge_alpha: float

    @classmethod
    def fit(cls, avatar) -> "Baselines":
        if not avatar.has("features.npz"):
            raise HygieError(f"{avatar.path}: has no features.npz; the baselines are fitted on the enrollment audio. "
                             "Use the full package made by 'hygie enroll'.")
        cfg = avatar.mel_config
        tr, f = avatar.track, avatar.features
        X_l, X_r, Y = [], [], []
        for v in range(len(f["video_offsets"]) - 1):
            mel = f["mel"][f["video_offsets"][v]:f["video_offsets"][v + 1]]
            sel = (tr["video"] == v) & tr["usable"]
            t = tr["times"][sel]
            keep = cfg.frame_at(t) < len(mel)
            X_l.append(frame_loudness(mel, t[keep], cfg))
            X_r.append(mel_window(mel, t[keep], cfg))
            Y.append(tr["coeffs"][sel][keep].astype(np.float64))
        xl, xr, y = np.concatenate(X_l), np.concatenate(X_r).astype(np.float64), np.concatenate(Y)
        A = np.stack([np.ones_like(xl), xl], 1)
        loud_w = np.linalg.lstsq(A, y, rcond=None)[0]
        mu, sd = xr.mean(0), xr.std(0) + 1e-6
        Z = np.concatenate([(xr - mu) / sd, np.ones((len(xr), 1))], 1)
        # alpha chosen on the last 10 % (by time), then refitted on everything
        n_tr = int(len(Z) * 0.9)
        best = (np.inf, 1.0)
        for alpha in (1.0, 10.0, 100.0, 1000.0, 10000.0):
            w = _ridge(Z[:n_tr], y[:n_tr], alpha)
            err = float(((Z[n_tr:] @ w - y[n_tr:]) ** 2).sum(1).mean())
            best = min(best, (err, alpha))
        w = _ridge(Z, y, best[1])
        log.debug("ridge baseline: alpha %.0f", best[1])
        return cls(cfg, y.shape[1], loud_w, mu, sd, w, best[1])

    def predict(self, name: str, mel: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Coefficients (N, K) at `times` (s) from the log-mel of the same audio."""
        if name == "mean mouth":
            return np.zeros((len(times), self.n_components), np.float32)
        if name == "loudness":
            xl = frame_loudness(mel, times, self.mel_config)
            return (np.stack([np.ones_like(xl), xl], 1) @ self.loud_w).astype(np.float32)
        if name == "ridge":
            Z = (mel_window(mel, times, self.mel_config).astype(np.float64) - self.ridge_mu) / self.ridge_sd
            return (np.concatenate([Z, np.ones((len(Z), 1))], 1) @ self.ridge_w).astype(np.float32)
        raise ValueError(f"unknown baseline {name!r}; choose from {NAMES}")


def _ridge(Z: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    reg = alpha * np.eye(Z.shape[1])
    reg[-1, -1] = 0.0  # no penalty on the bias
    return np.linalg.solve(Z.T @ Z + reg, Z.T @ y)
