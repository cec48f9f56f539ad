"""Run the streaming lip model (lips.onnx) with numpy + onnxruntime only.

The agent and the renderer call exactly this API:

    lip = LipModel(avatar, threads=1)
    lip.reset()                      # a new audio stream starts
    out = lip.push(mel_frames)       # (n, 80) new log-mel frames -> (n, K) PCA coefficients;
                                     # row j stands for the mel frame `lookahead` behind the j-th pushed frame
    coeffs = lip.predict(mel)        # offline: (T, 80) -> (T, K), row t stands for mel frame t
    lip.lookahead_s                  # seconds of audio the model needs after the frame it answers for

Mel normalisation (`MelNormaliser`) is part of the model: a noise-floor tracker per mel band
(rises slowly, falls fast) whose estimate is subtracted from each frame, then a fixed scale.
Training (models/dataset.py) uses this very class, so the runtime normalises identically,
offline and live, and a different microphone gain or EQ is removed by the floor.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hygie.core.errors import HygieError, PackageError
from hygie.core.audio.mel import MelConfig

log = logging.getLogger(__name__)

MODEL_FILE = "lips.onnx"
DESC_FILE = "lips.onnx.json"
DESC_FORMAT = "hygie-lips"
DESC_VERSION = 1


@dataclass
class NormConfig:
    """Noise-floor-relative log-mel normalisation (all values in natural-log power units)."""

    kind: str = "floor"
    rise_per_s: float = 0.5  # how fast the floor estimate may rise (nats/s, ~2.2 dB/s)
    fall_rate: float = 0.05  # fraction of the gap closed per frame when the input is below the floor
    init_floor: list[float] = field(default_factory=list)  # (n_mels,) start value (training floor)
    mean: list[float] = field(default_factory=list)  # (n_mels,) of (mel - floor) on training audio
    std: list[float] = field(default_factory=list)  # (n_mels,)
    clip: float = 6.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NormConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class MelNormaliser:
    """Streaming, stateful: `__call__(mel (n, M)) -> (n, M)` normalised, state carried between calls.

    Works on a batch too: mel (B, n, M) with a (B, M) floor (used by training).
    """

    def __init__(self, cfg: NormConfig, frame_rate: float = 100.0):
        self.cfg = cfg
        self.rise = float(cfg.rise_per_s) / float(frame_rate)
        self.fall = float(cfg.fall_rate)
        self.init_floor = np.asarray(cfg.init_floor, np.float32)
        self.mean = np.asarray(cfg.mean, np.float32)
        self.inv_std = (1.0 / np.maximum(np.asarray(cfg.std, np.float32), 1e-3)).astype(np.float32)
        self.floor = self.init_floor.copy()

    def reset(self, floor: np.ndarray | None = None) -> None:
        self.floor = (self.init_floor if floor is None else np.asarray(floor, np.float32)).copy()

    def track(self, mel: np.ndarray) -> np.ndarray:
        """Floor estimate *after* each frame: (…, n, M). Advances the state."""
        mel = np.asarray(mel, np.float32)
        out = np.empty_like(mel)
        f = self.floor
        if f.shape != mel.shape[:-2] + mel.shape[-1:]:
            f = np.broadcast_to(f, mel.shape[:-2] + mel.shape[-1:]).astype(np.float32)
        rise, fall = np.float32(self.rise), np.float32(self.fall)
        for i in range(mel.shape[-2]):
            d = mel[..., i, :] - f
            # above the floor: rise by at most `rise`; below: close `fall` of the gap (fall*d > d when d < 0)
            f = f + np.minimum(np.maximum(d, fall * d), rise)
            out[..., i, :] = f
        self.floor = f
        return out

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        z = np.asarray(mel, np.float32) - self.track(mel)
        z -= self.mean
        z *= self.inv_std
        return np.clip(z, -self.cfg.clip, self.cfg.clip, out=z)


def load_description(path: Path) -> dict[str, Any]:
    try:
        desc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PackageError(f"{path}: unreadable lip-model description ({e}). Run 'hygie train AVATAR' again.") from e
    if desc.get("format") != DESC_FORMAT or desc.get("format_version") != DESC_VERSION:
        raise PackageError(f"{path}: not a version-{DESC_VERSION} Hygie lip model. Run 'hygie train AVATAR' again.")
    return desc


def check_mel(mel: np.ndarray, n_mels: int, what: str = "mel") -> np.ndarray:
    mel = np.asarray(mel, np.float32)
    if mel.ndim != 2 or mel.shape[1] != n_mels:
        raise HygieError(f"{what}: expected log-mel frames of shape (n, {n_mels}), got {mel.shape}. "
                         "Compute them with hygie.core.audio.mel.LogMel using the avatar's audio parameters.")
    if not np.all(np.isfinite(mel)):
        raise HygieError(f"{what}: contains NaN/inf values (the audio has NaN/inf samples?). "
                         "Check the audio source; replace non-finite samples before computing log-mel.")
    return mel


class LipModel:
    """numpy + onnxruntime wrapper of an avatar's lips.onnx (torch is never imported)."""

    def __init__(self, avatar: Any, threads: int = 1, inter_threads: int = 1, model_dir: Path | None = None):
        import onnxruntime as ort

        base = Path(model_dir) if model_dir is not None else Path(avatar.path)
        if model_dir is None and not getattr(avatar, "has_lip_model", False):
            raise PackageError(f"{base}: this avatar has no lip model yet. Run 'hygie train {base}'.")
        self.desc = load_description(base / DESC_FILE)
        d = self.desc
        self.mel_config = MelConfig.from_dict(d["mel"])
        av_mel = getattr(avatar, "mel_config", None)
        if av_mel is not None and av_mel != self.mel_config:
            raise HygieError(f"{base}: the lip model was trained on mel parameters {self.mel_config} but the avatar "
                             f"uses {av_mel}. Run 'hygie train {base}' again.")
        self.n_mels = int(self.mel_config.n_mels)
        self.n_out = int(d["n_components"])
        self.lookahead_frames = int(d["lookahead_frames"])
        self.lookahead_s = self.lookahead_frames / self.mel_config.frame_rate
        self.input_name = d["inputs"]["mel"]
        self.output_name = d["outputs"]["coeffs"]
        self.state_specs: list[dict[str, Any]] = d["states"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = int(inter_threads)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(base / MODEL_FILE), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise PackageError(f"{base / MODEL_FILE}: cannot be loaded by onnxruntime ({e}). Run 'hygie train' again.") from e
        self._out_names = [self.output_name] + [s["output"] for s in self.state_specs]
        self.norm = MelNormaliser(NormConfig.from_dict(d["normalisation"]), self.mel_config.frame_rate)
        self._silence = self.norm.init_floor.copy()  # what "no sound" looks like, for end padding
        self.reset()

    def reset(self) -> None:
        """Start a new audio stream: zero recurrent/conv state, floor back to its trained start."""
        self.norm.reset()
        self.state = {s["input"]: np.zeros(s["shape"], np.float32) for s in self.state_specs}
        self.frames_in = 0

    def _run(self, z: np.ndarray) -> np.ndarray:
        feeds = {self.input_name: z[None].astype(np.float32), **self.state}
        outs = self.session.run(self._out_names, feeds)
        for s, v in zip(self.state_specs, outs[1:]):
            self.state[s["input"]] = v
        return outs[0][0]

    def push(self, mel_frames: np.ndarray) -> np.ndarray:
        """New mel frames (n, n_mels) -> (n, K); row j = coefficients of the frame `lookahead` behind pushed frame j."""
        mel = check_mel(mel_frames, self.n_mels)
        if len(mel) == 0:
            return np.zeros((0, self.n_out), np.float32)
        out = self._run(self.norm(mel))
        self.frames_in += len(mel)
        return out

    def predict(self, mel: np.ndarray, chunk: int = 0) -> np.ndarray:
        """Offline: (T, n_mels) -> (T, K) with row t for mel frame t (streaming state, then flushed).

        The last `lookahead` frames are answered by padding the end with the trained silence floor.
        chunk > 0 feeds the frames in chunks of that size (same result; used by the tests).
        """
        mel = check_mel(mel, self.n_mels)
        self.reset()
        pad = np.repeat(self._silence[None], self.lookahead_frames, axis=0)
        x = np.concatenate([mel, pad]) if self.lookahead_frames else mel
        if chunk and chunk > 0:
            out = np.concatenate([self.push(x[i:i + chunk]) for i in range(0, len(x), chunk)]) if len(x) else \
                np.zeros((0, self.n_out), np.float32)
        else:
            out = self.push(x)
        self.reset()
        return out[self.lookahead_frames:]


def coeffs_at_times(frame_coeffs: np.ndarray, times: np.ndarray, mel_config: MelConfig) -> np.ndarray:
    """Per-mel-frame coefficients (T, K) (row t = mel frame t) -> values at the given times (s), linear interpolation."""
    frame_coeffs = np.asarray(frame_coeffs, np.float32)
    pos = (np.asarray(times, np.float64) * mel_config.sample_rate - mel_config.win_length / 2) / mel_config.hop_length
    idx = np.arange(len(frame_coeffs))
    return np.stack([np.interp(pos, idx, frame_coeffs[:, k]) for k in range(frame_coeffs.shape[1])], axis=1).astype(np.float32)
