"""Training data for the lip model: log-mel frames paired with the mouth's PCA coefficients by time.

Per source video, each mel frame (centre (i*hop + win/2)/sr) gets the coefficients interpolated
between the two video frames around it (invalid if either is unusable). Validation is the last
`val_fraction` of each video by time, never sampled for training. Augmentation works on the
log-mel (we do not keep raw audio): gain, EQ tilt, additive noise, pitch (mel-bin shift) and
speed (time resampling of mel and targets together). Normalisation is
`hygie.core.lips.model.MelNormaliser`, the same code the runtime runs.
numpy only: torch stays in train.py/export.py.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from hygie.core.errors import HygieError
from hygie.core.lips.model import MelNormaliser, NormConfig
from hygie.core.audio.mel import MelConfig

log = logging.getLogger(__name__)

DB = np.log(10.0) / 10.0  # 1 dB of power in natural-log units


@dataclass
class VideoData:
    mel: np.ndarray  # (T, M) raw log-mel
    target: np.ndarray  # (T, K) coefficients at mel frame times (0 where invalid)
    valid: np.ndarray  # (T,) bool
    train_end: int  # mel frames [0, train_end) train, [train_end, T) validation


@dataclass
class LipData:
    videos: list[VideoData]
    mel_config: MelConfig
    n_components: int
    coeff_std: np.ndarray  # (K,) on training frames
    coeff_mean: np.ndarray  # (K,)
    opening_basis: np.ndarray  # (K+1, 2): [1, c] @ basis = (p14 - p13) xy of the reconstructed lips
    norm: NormConfig = field(default_factory=NormConfig)

    @property
    def n_train_frames(self) -> int:
        return int(sum(v.valid[:v.train_end].sum() for v in self.videos))

    @property
    def n_val_frames(self) -> int:
        return int(sum(v.valid[v.train_end:].sum() for v in self.videos))


@dataclass
class AugmentConfig:
    p: float = 0.8  # probability a chunk is augmented at all
    gain_db: float = 12.0
    tilt_db: float = 8.0  # +- across the band
    p_noise: float = 0.5
    noise_db: tuple[float, float] = (0.0, 25.0)  # above the recording's floor
    pitch_bins: float = 1.5  # +- mel-bin shift (~ +-6 % pitch)
    p_speed: float = 0.5
    speed: float = 0.1  # +- 10 %
    freq_mask_bins: int = 8  # SpecAugment-style: up to this many adjacent mel bands set to the floor
    p_adapted_floor: float = 0.8  # the normaliser starts adapted to the new conditions (as after a few s live)
    # v2: the microphone and room families of hygie.models.degrade, made on the log-mel (no raw audio is kept)
    p_warp: float = 0.5  # vocal-tract-length warp: band m reads the frequency f_m / alpha
    warp: float = 0.12  # alpha in 1 +- warp
    p_room: float = 0.3  # reverberation: power smeared by an exponential tail (RT60, direct-to-reverberant ratio)
    rt60_s: tuple[float, float] = (0.15, 1.0)
    drr_db: tuple[float, float] = (-3.0, 12.0)
    p_band: float = 0.2  # a telephone band or a cheap microphone's EQ (half each)
    p_snr_noise: float = 0.3  # pink or white noise at an SNR relative to the chunk's speech power
    snr_db: tuple[float, float] = (5.0, 35.0)


def opening_basis(pca: dict[str, np.ndarray]) -> np.ndarray:
    """Linear map from [1, coeffs] to the 13->14 inner-lip vector of the reconstructed lips."""
    from hygie.core.face.geometry import LIP_POS, LOWER_INNER, UPPER_INNER

    mean = pca["mean"].reshape(-1, 2)
    comps = pca["components"].reshape(len(pca["components"]), -1, 2)
    a, b = LIP_POS[UPPER_INNER], LIP_POS[LOWER_INNER]
    return np.concatenate([(mean[b] - mean[a])[None], comps[:, b] - comps[:, a]]).astype(np.float32)


def _targets_at_mel_frames(times: np.ndarray, coeffs: np.ndarray, usable: np.ndarray, n_mel: int,
                           cfg: MelConfig) -> tuple[np.ndarray, np.ndarray]:
    ft = cfg.frame_time(np.arange(n_mel))
    pos = np.interp(ft, times, np.arange(len(times)), left=-1, right=-1)
    lo = np.clip(np.floor(pos).astype(int), 0, len(times) - 1)
    hi = np.clip(lo + 1, 0, len(times) - 1)
    w = (pos - lo)[:, None]
    ok = (pos >= 0) & usable[lo] & usable[hi]
    c = np.nan_to_num(coeffs)
    tgt = (1 - w) * c[lo] + w * c[hi]
    tgt[~ok] = 0
    return tgt.astype(np.float32), ok


def build_dataset(avatar, val_fraction: float = 0.1, max_seconds: float | None = None) -> LipData:
    """Pair the package's features.npz mel with track.npz coefficients. max_seconds trims each video (tests)."""
    if not avatar.has("features.npz"):
        raise HygieError(f"{avatar.path}: has no audio features (features.npz); this is a slim runtime package. "
                         "Re-run 'hygie enroll' on the source video (without a slim option) to train a lip model.")
    cfg = avatar.mel_config
    feats = avatar.features
    mel, offs = feats["mel"], feats["video_offsets"]
    if mel.ndim != 2 or mel.shape[1] != cfg.n_mels:
        raise HygieError(f"{avatar.path}: features.npz has mel of shape {mel.shape} but avatar.json says n_mels="
                         f"{cfg.n_mels}; the package is inconsistent. Re-run 'hygie enroll'.")
    if not np.all(np.isfinite(mel)):
        raise HygieError(f"{avatar.path}: features.npz contains NaN/inf (audio with NaN samples?). "
                         "Re-export the video's audio and re-run 'hygie enroll'.")
    tr = avatar.track
    K = tr["coeffs"].shape[1]
    videos: list[VideoData] = []
    for v in range(len(offs) - 1):
        m = mel[offs[v]:offs[v + 1]]
        sel = tr["video"] == v
        times = tr["times"][sel]
        if max_seconds is not None:
            m = m[: int(cfg.frame_rate * max_seconds)]
        if len(m) < 50 or len(times) < 2:
            continue
        tgt, ok = _targets_at_mel_frames(times, tr["coeffs"][sel], tr["usable"][sel], len(m), cfg)
        train_end = int(round(len(m) * (1 - val_fraction)))
        videos.append(VideoData(m, tgt, ok, train_end))
    if not videos or sum(v.valid.sum() for v in videos) < 100:
        raise HygieError(f"{avatar.path}: too few frames with both audio and a usable mouth to train on.")
    tr_c = np.concatenate([v.target[:v.train_end][v.valid[:v.train_end]] for v in videos])
    data = LipData(videos, cfg, K, tr_c.std(0).astype(np.float32) + 1e-6, tr_c.mean(0).astype(np.float32),
                   opening_basis(avatar.pca))
    data.norm = fit_norm([v.mel[:v.train_end] for v in videos], cfg.frame_rate)
    log.info("lip data: %d train / %d validation frames (%.0f / %.0f s), K=%d", data.n_train_frames,
             data.n_val_frames, data.n_train_frames / cfg.frame_rate, data.n_val_frames / cfg.frame_rate, K)
    return data


def fit_norm(mels: list[np.ndarray], frame_rate: float, base: NormConfig | None = None) -> NormConfig:
    """Training statistics of floor-relative log-mel (run the tracker over the training audio)."""
    base = base or NormConfig()
    allm = np.concatenate(mels)
    init = np.percentile(allm, 5, axis=0).astype(np.float32)
    cfg = NormConfig(kind=base.kind, rise_per_s=base.rise_per_s, fall_rate=base.fall_rate,
                     init_floor=init.tolist(), mean=[0.0] * allm.shape[1], std=[1.0] * allm.shape[1], clip=base.clip)
    rel = []
    for m in mels:
        n = MelNormaliser(cfg, frame_rate)
        rel.append(m - n.track(m))
    rel = np.concatenate(rel)
    cfg.mean = rel.mean(0).astype(np.float32).tolist()
    cfg.std = (rel.std(0) + 1e-3).astype(np.float32).tolist()
    return cfg


def mel_centres(cfg: MelConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band."""
    from hygie.core.audio.mel import _hz_to_mel, _mel_to_hz

    m = np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2)[1:-1]
    return np.asarray(_mel_to_hz(m), np.float64)


def room_smear(power: np.ndarray, rt60_s: float, drr_db: float, frame_rate: float) -> np.ndarray:
    """Expected mel power through a room: the direct frame plus an exponentially decaying tail of past frames."""
    K = max(1, int(rt60_s * frame_rate))
    k = np.arange(1, K + 1)
    tail = np.exp(-6.9 * k / (rt60_s * frame_rate))
    tail *= 10 ** (-drr_db / 10) / tail.sum()
    n = len(power)
    nfft = 1 << (n + K).bit_length()
    h = np.zeros(K + 1)
    h[0], h[1:] = 1.0, tail
    y = np.fft.irfft(np.fft.rfft(power, nfft, axis=0) * np.fft.rfft(h, nfft)[:, None], nfft, axis=0)[:n]
    return np.maximum(y, 0).astype(np.float32) / (1 + 10 ** (-drr_db / 10))  # the same overall level


class Augmenter:
    """Random changes of microphone, room and voice, applied to raw log-mel chunks."""

    def __init__(self, cfg: AugmentConfig, floor: np.ndarray, mel_config: MelConfig | None = None):
        self.cfg = cfg
        self.floor = np.asarray(floor, np.float32)
        self.mel = mel_config
        if mel_config is not None:
            from hygie.models.degrade import cheap_mic_gain, telephone_gain

            f = mel_centres(mel_config)
            self.centres = f
            self.width = np.gradient(f)  # Hz per band, to weigh band powers into a whole-signal power
            self.log_floor = float(np.log(mel_config.log_floor))
            self.bands = {"telephone": np.where(f > 3800, 0.0, telephone_gain(f)) ** 2, "cheap_mic": cheap_mic_gain(f) ** 2}

    def _v2(self, x: np.ndarray, floor: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Vocal-tract warp, room, telephone/cheap-mic band, noise at an SNR (each with its probability)."""
        c, M = self.cfg, x.shape[1]
        if rng.random() < c.p_warp:
            alpha = 1 + rng.uniform(-c.warp, c.warp)
            src = np.interp(self.centres / alpha, self.centres, np.arange(M))
            lo = np.floor(src).astype(int)
            hi = np.minimum(lo + 1, M - 1)
            w = (src - lo).astype(np.float32)
            x = x[:, lo] * (1 - w) + x[:, hi] * w
        if rng.random() < c.p_room:
            p = room_smear(np.exp(x), rng.uniform(*c.rt60_s), rng.uniform(*c.drr_db), self.mel.frame_rate)
            x = np.log(np.maximum(p, np.exp(self.log_floor)))
        if rng.random() < c.p_band:
            g = self.bands["telephone" if rng.random() < 0.5 else "cheap_mic"]
            x = np.log(np.maximum(np.exp(x) * g, np.exp(self.log_floor)))
            floor = np.log(np.maximum(np.exp(floor) * g, np.exp(self.log_floor)))
        if rng.random() < c.p_snr_noise:
            shape = np.ones(M) if rng.random() < 0.5 else 1000.0 / self.centres  # white or pink (1/f)
            sig = float((np.exp(x) * self.width).sum(1).mean())
            n = shape * sig / float((shape * self.width).sum()) * 10 ** (-rng.uniform(*c.snr_db) / 10)
            x = np.log(np.exp(x) + n[None] * rng.exponential(1.0, size=x.shape))
            floor = np.log(np.exp(floor) + n)
        return x.astype(np.float32), floor.astype(np.float32)

    def speed_factor(self, rng: np.random.Generator) -> float:
        c = self.cfg
        return float(1 + rng.uniform(-c.speed, c.speed)) if rng.random() < c.p_speed else 1.0

    def __call__(self, mel: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(n, M) -> augmented (n, M) and the floor the normaliser should start from (M,)."""
        c = self.cfg
        M = mel.shape[1]
        floor = self.floor.copy()
        if rng.random() >= c.p:
            return mel, floor
        x = mel
        if self.mel is not None:
            x, floor = self._v2(x, floor, rng)
        shift = rng.uniform(-c.pitch_bins, c.pitch_bins)
        src = np.clip(np.arange(M) - shift, 0, M - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, M - 1)
        w = (src - lo).astype(np.float32)
        x = x[:, lo] * (1 - w) + x[:, hi] * w
        ramp = np.linspace(-0.5, 0.5, M, dtype=np.float32)
        offset = (rng.uniform(-c.gain_db, c.gain_db) + rng.uniform(-c.tilt_db, c.tilt_db) * 2 * ramp) * DB
        x = x + offset
        floor = floor + offset
        if rng.random() < c.p_noise:
            level = floor + rng.uniform(*c.noise_db) * DB + rng.uniform(-6, 6) * DB * 2 * ramp
            noise = np.exp(level)[None] * rng.exponential(1.0, size=x.shape).astype(np.float32)
            x = np.log(np.exp(x) + noise)
            floor = np.log(np.exp(floor) + np.exp(level))
        if c.freq_mask_bins > 0:
            w = int(rng.integers(0, c.freq_mask_bins + 1))
            if w:
                a = int(rng.integers(0, M - w + 1))
                x = x.copy()
                x[:, a:a + w] = floor[a:a + w]
        if rng.random() >= c.p_adapted_floor:
            floor = self.floor.copy()
        return x.astype(np.float32), floor.astype(np.float32)


def _resample(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(a) - 1)
    w = (pos - lo).reshape(-1, *([1] * (a.ndim - 1))).astype(np.float32)
    return a[lo] * (1 - w) + a[hi] * w


class ChunkSampler:
    """Random training chunks (normalised input, shifted targets, loss mask) from the training part only."""

    def __init__(self, data: LipData, chunk: int, lookahead: int, warmup: int = 30,
                 augment: AugmentConfig | None = None, seed: int = 0):
        self.data, self.chunk, self.lookahead, self.warmup = data, chunk, lookahead, warmup
        self.rng = np.random.default_rng(seed)
        self.aug = Augmenter(augment, np.asarray(data.norm.init_floor), data.mel_config) if augment else None
        self.max_speed = 1 + (augment.speed if augment else 0)
        need = int(np.ceil(chunk * self.max_speed)) + 2
        self.spans = [(vi, v.train_end - need) for vi, v in enumerate(data.videos) if v.train_end > need]
        if not self.spans:
            raise HygieError("the training audio is shorter than one training chunk; record more (3–5 minutes).")
        w = np.array([s for _, s in self.spans], np.float64)
        self.p = w / w.sum()
        self.norm = MelNormaliser(data.norm, data.mel_config.frame_rate)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, L = self.chunk, self.lookahead
        xs, ys, ms, floors = [], [], [], []
        for _ in range(size):
            vi, span = self.spans[self.rng.choice(len(self.spans), p=self.p)]
            v = self.data.videos[vi]
            f = self.aug.speed_factor(self.rng) if self.aug else 1.0
            s = int(self.rng.integers(0, span + 1))
            length = int(np.ceil(n * f)) + 2
            mel, tgt, ok = v.mel[s:s + length], v.target[s:s + length], v.valid[s:s + length].astype(np.float32)
            if f != 1.0:
                pos = np.arange(n) * f
                mel, tgt, ok = _resample(mel, pos), _resample(tgt, pos), _resample(ok, pos)
            mel, tgt, ok = mel[:n], tgt[:n], ok[:n] > 0.999
            floor = np.asarray(self.data.norm.init_floor, np.float32)
            if self.aug:
                mel, floor = self.aug(mel, self.rng)
            xs.append(mel)
            floors.append(floor)
            y = np.zeros_like(tgt)
            m = np.zeros(n, bool)
            y[L:], m[L:] = tgt[:n - L], ok[:n - L]
            m[:self.warmup] = False
            ys.append(y)
            ms.append(m)
        self.norm.reset(np.stack(floors))
        x = self.norm(np.stack(xs))
        return x, np.stack(ys), np.stack(ms)


def validation_sequences(data: LipData, lookahead: int, warmup: int = 300) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per video: (normalised input, shifted targets, mask) over the validation part, with `warmup` frames before it."""
    out = []
    for v in data.videos:
        if v.train_end >= len(v.mel):
            continue
        norm = MelNormaliser(data.norm, data.mel_config.frame_rate)
        z = norm(v.mel)  # the floor runs over the whole video, as it would live
        s = max(0, v.train_end - warmup)
        x = z[s:]
        y = np.zeros((len(x), data.n_components), np.float32)
        m = np.zeros(len(x), bool)
        y[lookahead:] = v.target[s:len(v.mel) - lookahead]
        m[lookahead:] = v.valid[s:len(v.mel) - lookahead]
        m[: v.train_end - s + lookahead] = False  # outputs for training frames
        out.append((x, y, m))
    return out
