"""Log-mel features, offline and streaming, bit-for-bit the same framing.

Frame i covers samples [i*hop, i*hop + win): no centre padding, so a streaming
extractor that has seen the same samples produces exactly the same frames.
Its centre time is (i*hop + win/2) / sr.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_mels: int = 80
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_fft: int = 512
    fmin: float = 20.0
    fmax: float = 7600.0
    log_floor: float = 1e-5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MelConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def frame_time(self, i: np.ndarray | int) -> np.ndarray | float:
        return (np.asarray(i) * self.hop_length + self.win_length / 2) / self.sample_rate

    def frame_at(self, t: np.ndarray | float) -> np.ndarray:
        """Index of the mel frame whose centre is closest to time t (may be out of range)."""
        return np.rint((np.asarray(t) * self.sample_rate - self.win_length / 2) / self.hop_length).astype(np.int64)

    def n_frames(self, n_samples: int) -> int:
        return max(0, 1 + (n_samples - self.win_length) // self.hop_length)


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """(n_fft//2+1, n_mels) triangular HTK-mel filters, area-normalised."""
    n_bins = cfg.n_fft // 2 + 1
    freqs = np.linspace(0, cfg.sample_rate / 2, n_bins)
    mpts = np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2)
    hz = _mel_to_hz(mpts)
    fb = np.zeros((n_bins, cfg.n_mels), dtype=np.float64)
    for m in range(cfg.n_mels):
        lo, c, hi = hz[m], hz[m + 1], hz[m + 2]
        up = (freqs - lo) / (c - lo)
        down = (hi - freqs) / (hi - c)
        fb[:, m] = np.maximum(0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return fb.astype(np.float32)


class LogMel:
    """Offline log-mel: `LogMel(cfg)(audio) -> (T, n_mels) float32`."""

    def __init__(self, cfg: MelConfig | None = None):
        self.cfg = cfg or MelConfig()
        self.window = np.hanning(self.cfg.win_length + 1)[:-1].astype(np.float32)  # periodic Hann
        self.fb = mel_filterbank(self.cfg)

    def frames_to_mel(self, frames: np.ndarray) -> np.ndarray:
        """frames: (T, win_length) raw samples -> (T, n_mels)."""
        spec = np.fft.rfft(frames * self.window, n=self.cfg.n_fft, axis=-1)
        power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
        # einsum, not `@`: a threaded BLAS sums in an order set by its thread count and the block it is
        # given, so the same audio gave other bits in a Ray worker (1 thread), a second chunk or a live frame
        mel = np.einsum("tf,fm->tm", power, self.fb)
        return np.log(np.maximum(mel, self.cfg.log_floor)).astype(np.float32)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
        n = self.cfg.n_frames(len(audio))
        if n == 0:
            return np.zeros((0, self.cfg.n_mels), np.float32)
        idx = np.arange(self.cfg.win_length)[None, :] + self.cfg.hop_length * np.arange(n)[:, None]
        out = np.empty((n, self.cfg.n_mels), np.float32)
        for s in range(0, n, 4096):  # bounded memory on long files
            out[s:s + 4096] = self.frames_to_mel(audio[idx[s:s + 4096]])
        return out


class StreamingLogMel:
    """Feed audio in any chunk sizes; get exactly the frames the offline extractor gives."""

    def __init__(self, cfg: MelConfig | None = None):
        self.mel = LogMel(cfg)
        self.cfg = self.mel.cfg
        self._buf = np.zeros(0, np.float32)
        self.frames_emitted = 0

    def reset(self) -> None:
        self._buf = np.zeros(0, np.float32)
        self.frames_emitted = 0

    def push(self, chunk: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate([self._buf, np.asarray(chunk, np.float32).ravel()])
        n = self.cfg.n_frames(len(self._buf))
        if n == 0:
            return np.zeros((0, self.cfg.n_mels), np.float32)
        out = self.mel(self._buf[: (n - 1) * self.cfg.hop_length + self.cfg.win_length])
        self._buf = self._buf[n * self.cfg.hop_length:]
        self.frames_emitted += n
        return out
