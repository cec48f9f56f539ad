"""Train the lip model of an avatar package and write lips.onnx (+ .json, training.json) into it.

Loss: MSE of the reconstructed lip landmarks (= MSE of the orthonormal PCA coefficients, i.e.
components weighted by their variance), plus the inner-lip opening vector, plus a temporal-difference
term (40 ms differences) so motion is neither sluggish nor jittery. Early stopping on the validation
part (last 10 % of each video by time). Deterministic for a given seed and step count.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hygie.core.errors import HygieError
from hygie.core.package.avatar import load_package
from hygie.core.package.writer import open_for_update, update_package
from hygie.models.dataset import AugmentConfig, ChunkSampler, LipData, build_dataset, validation_sequences
from hygie.models.lipnet import LipEnsemble, LipNet, LipNetConfig

log = logging.getLogger(__name__)

# 50 ms: the live agent's p95 mic-to-frame latency must stay <= 100 ms, and 50 ms of look-ahead
# leaves ~35 ms for the analysis window, capture and render. Held-out GRID opening r at 50 ms:
# 0.867-0.882 over runs (80 ms: 0.837-0.890, mostly >= 0.88; 40 ms: 0.861-0.876). See docs/lip_model.md.
DEFAULT_LOOKAHEAD_MS = 50.0


@dataclass
class TrainConfig:
    seed: int = 0
    lookahead_ms: float = DEFAULT_LOOKAHEAD_MS
    steps: int = 600
    batch: int = 24
    chunk: int = 200  # mel frames (2 s)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    w_open: float = 4.0  # the aperture is what viewers read; 4 vs 2 gave other voices r +0.015
    w_diff: float = 0.5
    eval_every: int = 50
    members: int = 1  # >1: an ensemble of that many networks (each trained on its own loss), averaged
    ema_decay: float = 0.0  # >0: validate/export an exponential moving average of the weights
    patience: int = 5  # evaluations without improvement before stopping...
    min_steps_frac: float = 0.7  # ...but never before the learning rate has mostly annealed (validation is noisy)
    max_minutes: float = 4.0  # safety cap (breaks step-count determinism only if hit)
    threads: int = 1  # torch threads; 1 is fastest for this small GRU and safe on a busy machine (0 = all cores)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # v2: a light causal smoothing of the output, trained through (pole 0.6 at 100 Hz, 8 taps): calmer on
    # voices that are not the person's (LJSpeech speed 1.19 -> 1.12, espeak jitter 0.75 -> 0.57), same own r
    net: LipNetConfig = field(default_factory=lambda: LipNetConfig(smooth=0.6))
    max_seconds: float | None = None  # use only the first N s of each video (tests)
    progress: bool = True
    calibrate: bool = True  # v2: per-component output scale fitted on the validation split (std ratio -> 1)
    calibrate_range: tuple[float, float] = (1.0, 1.3)  # the scales are clipped to this range
    w_var: float = 0.0  # weight of a per-chunk std-matching term (a loss that does not shrink toward the mean)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["net"] = self.net.to_dict()
        return d


class LipLoss:
    """Weighted MSE terms, each normalised by the variance of its target so they are comparable."""

    def __init__(self, data: LipData, w_open: float, w_diff: float, diff_lag: int = 4, w_var: float = 0.0):
        self.basis = torch.from_numpy(data.opening_basis)
        self.w_var = w_var
        self.var_k = torch.from_numpy(data.coeff_std.astype(np.float32) ** 2).sum()
        self.var_c = float((data.coeff_std ** 2).sum())
        allc = np.concatenate([v.target[v.valid] for v in data.videos])
        op = np.concatenate([np.ones((len(allc), 1), np.float32), allc], 1) @ data.opening_basis
        self.var_o = float(op.var(0).sum()) + 1e-8
        self.var_d = 0.0
        for v in data.videos:
            d = v.target[diff_lag:] - v.target[:-diff_lag]
            ok = v.valid[diff_lag:] & v.valid[:-diff_lag]
            self.var_d += float((d[ok] ** 2).mean(0).sum()) / len(data.videos)
        self.var_d += 1e-8
        self.w_open, self.w_diff, self.lag = w_open, w_diff, diff_lag

    def opening(self, c: torch.Tensor) -> torch.Tensor:
        return self.basis[0] + c @ self.basis[1:]

    def __call__(self, pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        m = mask.float()
        n = m.sum().clamp(min=1.0)
        lc = (((pred - y) ** 2).sum(-1) * m).sum() / n / self.var_c
        lo = (((self.opening(pred) - self.opening(y)) ** 2).sum(-1) * m).sum() / n / self.var_o
        k = self.lag
        md = m[:, k:] * m[:, :-k]
        dd = (pred[:, k:] - pred[:, :-k]) - (y[:, k:] - y[:, :-k])
        ld = ((dd ** 2).sum(-1) * md).sum() / md.sum().clamp(min=1.0) / self.var_d
        total = lc + self.w_open * lo + self.w_diff * ld
        parts = {"coef": float(lc.detach()), "open": float(lo.detach()), "diff": float(ld.detach())}
        if self.w_var > 0:  # per chunk and component: the predicted std should be the real one
            def std(a: torch.Tensor) -> torch.Tensor:
                mu = (a * m[..., None]).sum(1) / n_t
                return torch.sqrt((((a - mu[:, None]) ** 2) * m[..., None]).sum(1) / n_t + 1e-8)
            n_t = m.sum(1).clamp(min=1.0)[:, None]
            lv = (((std(pred) - std(y)) ** 2) / self.var_k).sum(-1).mean()
            total = total + self.w_var * lv
            parts["var"] = float(lv.detach())
        return total, parts


def _opening_r(loss: LipLoss, pred: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
    with torch.no_grad():
        po = torch.linalg.vector_norm(loss.opening(torch.from_numpy(pred[m])), dim=-1).numpy()
        yo = torch.linalg.vector_norm(loss.opening(torch.from_numpy(y[m])), dim=-1).numpy()
    if po.std() < 1e-9 or yo.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(po, yo)[0, 1])


def evaluate_validation(model: LipNet, loss: LipLoss, val: list) -> dict[str, float]:
    model.eval()
    tot, n, rs = 0.0, 0, []
    with torch.no_grad():
        for x, y, m in val:
            pred = model(torch.from_numpy(x)[None], *model.initial_state())[0]
            l, _ = loss(pred, torch.from_numpy(y)[None], torch.from_numpy(m)[None])
            k = int(m.sum())
            tot += float(l) * k
            n += k
            rs.append(_opening_r(loss, pred[0].numpy(), y, m))
    model.train()
    return {"loss": tot / max(n, 1), "opening_r": float(np.mean(rs)) if rs else float("nan")}


def set_determinism(seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))


def train_model(data: LipData, cfg: TrainConfig) -> tuple[LipNet, dict[str, Any]]:
    """Train in memory; returns the best model (by validation loss) and a history dict."""
    from tqdm import tqdm

    set_determinism(cfg.seed, cfg.threads)
    fr = data.mel_config.frame_rate
    net_cfg = LipNetConfig(**{**cfg.net.to_dict(), "conv_kernels": tuple(cfg.net.conv_kernels),
                              "n_mels": data.mel_config.n_mels, "n_out": data.n_components,
                              "lookahead": int(round(cfg.lookahead_ms / 1000 * fr))})
    scale, bias = torch.from_numpy(data.coeff_std), torch.from_numpy(data.coeff_mean)
    if cfg.members > 1:
        model: LipNet | LipEnsemble = LipEnsemble([LipNet(net_cfg, scale, bias) for _ in range(cfg.members)])
    else:
        model = LipNet(net_cfg, scale, bias)
    loss_fn = LipLoss(data, cfg.w_open, cfg.w_diff, w_var=cfg.w_var)
    sampler = ChunkSampler(data, cfg.chunk, net_cfg.lookahead, augment=cfg.augment, seed=cfg.seed)
    val = validation_sequences(data, net_cfg.lookahead)
    if not val:
        raise HygieError("no validation audio: the enrollment is too short to hold out its last 10 %.")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    log.info("lip model: %d parameters, look-ahead %d ms, %d steps of %d x %.1f s", model.n_params(),
             round(net_cfg.lookahead * 1000 / fr), cfg.steps, cfg.batch, cfg.chunk / fr)
    best = {"loss": math.inf, "step": 0, "opening_r": float("nan")}
    ema = copy.deepcopy(model) if cfg.ema_decay > 0 else model  # the weights that are validated and exported
    best_state = copy.deepcopy(ema.state_dict())
    hist: list[dict[str, float]] = []
    t0 = time.time()
    bad = 0
    run_loss = None
    stopped = "steps"
    bar = tqdm(total=cfg.steps, desc="training lip model", unit="step", disable=not cfg.progress)
    for step in range(1, cfg.steps + 1):
        x, y, m = sampler.batch(cfg.batch)
        xt, yt, mt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m)
        if isinstance(model, LipEnsemble):
            outs = model.member_outputs(xt, *model.initial_state(cfg.batch))[0]
            loss = sum(loss_fn(o, yt, mt)[0] for o in outs) / len(outs)
        else:
            loss = loss_fn(model(xt, *model.initial_state(cfg.batch))[0], yt, mt)[0]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if ema is not model:
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), model.parameters()):
                    pe.mul_(cfg.ema_decay).add_(p, alpha=1 - cfg.ema_decay)
        lv = float(loss.detach())
        run_loss = lv if run_loss is None else 0.9 * run_loss + 0.1 * lv
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            v = evaluate_validation(ema, loss_fn, val)
            hist.append({"step": step, "train": run_loss, "val": v["loss"], "val_opening_r": v["opening_r"]})
            if v["loss"] < best["loss"]:
                best = {"loss": v["loss"], "step": step, "opening_r": v["opening_r"]}
                best_state = copy.deepcopy(ema.state_dict())
                bad = 0
            else:
                bad += 1
            bar.set_postfix(train=f"{run_loss:.3f}", val=f"{v['loss']:.3f}", r=f"{v['opening_r']:.3f}")
            if bad >= cfg.patience and cfg.min_steps_frac * cfg.steps <= step < cfg.steps:
                stopped = "early"
                break
        if (time.time() - t0) / 60 > cfg.max_minutes:
            log.warning("training stopped at the %.1f-minute cap after %d steps", cfg.max_minutes, step)
            v = evaluate_validation(ema, loss_fn, val)
            if v["loss"] < best["loss"]:
                best = {"loss": v["loss"], "step": step, "opening_r": v["opening_r"]}
                best_state = copy.deepcopy(ema.state_dict())
            stopped = "time"
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    calib = calibrate(model, val, cfg.calibrate_range) if cfg.calibrate and isinstance(model, LipNet) else None
    info = {"calibration": calib, "best_step": best["step"], "val_loss": best["loss"], "val_opening_r": best["opening_r"],
            "steps_run": step, "stopped": stopped, "train_seconds": round(time.time() - t0, 1),
            "n_params": model.n_params(), "history": hist}
    log.info("best validation loss %.4f (opening r %.3f) at step %d, %.0f s", best["loss"], best["opening_r"],
             best["step"], info["train_seconds"])
    return model, info


def calibrate(model: LipNet, val: list, clip: tuple[float, float]) -> dict[str, Any]:
    """Post-hoc amplitude calibration: scale each output component about its validation mean so its std
    matches the real one on the validation split (a regression net shrinks toward the mean). Folded into
    the head's output buffers, so the ONNX graph and the runtime are unchanged."""
    preds, ys = [], []
    with torch.no_grad():
        for x, y, m in val:
            preds.append(model(torch.from_numpy(x)[None], *model.initial_state())[0][0].numpy()[m])
            ys.append(y[m])
    p, y = np.concatenate(preds), np.concatenate(ys)
    if len(p) < 50:
        log.warning("calibration skipped: only %d validation frames", len(p))
        return {"scale": None, "frames": int(len(p))}
    s = np.clip(y.std(0) / np.maximum(p.std(0), 1e-9), *clip).astype(np.float32)
    mu = p.mean(0).astype(np.float32)
    with torch.no_grad():
        sc, b = torch.from_numpy(s), torch.from_numpy(mu)
        model.out_bias.copy_(sc * model.out_bias + (1 - sc) * b)
        model.out_scale.mul_(sc)
    log.info("calibration: output scales %s (validation std ratios before: %s)", np.round(s, 3),
             np.round(p.std(0) / np.maximum(y.std(0), 1e-9), 3))
    return {"scale": s.tolist(), "mean": mu.tolist(), "val_std_ratio_before": (p.std(0) / np.maximum(y.std(0), 1e-9)).tolist(),
            "frames": int(len(p))}


def _mean_mouth_val_loss(data: LipData, cfg: TrainConfig) -> float:
    """Validation loss of always predicting the training mean (the mean-mouth baseline)."""
    loss_fn = LipLoss(data, cfg.w_open, cfg.w_diff)
    L = int(round(cfg.lookahead_ms / 1000 * data.mel_config.frame_rate))
    tot, n = 0.0, 0
    for x, y, m in validation_sequences(data, L):
        pred = torch.from_numpy(np.broadcast_to(data.coeff_mean, y.shape).copy())[None]
        l, _ = loss_fn(pred, torch.from_numpy(y)[None], torch.from_numpy(m)[None])
        tot += float(l) * int(m.sum())
        n += int(m.sum())
    return tot / max(n, 1)


def train_package(path: str | os.PathLike, seed: int = 0, lookahead_ms: float | None = None,
                  steps: int | None = None, minutes: float | None = None,
                  config: TrainConfig | None = None) -> dict[str, Any]:
    """Train the lip model of the package at `path` (folder or .hygie), export lips.onnx, refresh hashes."""
    from hygie.models.export import export_onnx

    t_start = time.time()
    cfg = copy.deepcopy(config) if config is not None else TrainConfig()
    cfg.seed = seed
    if lookahead_ms is not None:
        cfg.lookahead_ms = float(lookahead_ms)
    if steps is not None:
        cfg.steps = int(steps)
    if minutes is not None:
        cfg.max_minutes = float(minutes)
    if not 0 <= cfg.lookahead_ms <= 500:
        raise HygieError(f"look-ahead {cfg.lookahead_ms} ms is out of range; use 0–200 ms (default {DEFAULT_LOOKAHEAD_MS:.0f}).")
    path = Path(path)
    with open_for_update(path) as pkg_dir:
        avatar = load_package(pkg_dir)
        data = build_dataset(avatar, max_seconds=cfg.max_seconds)
        model, info = train_model(data, cfg)
        cfg.net = model.cfg  # record the network as built (look-ahead in frames, data-derived sizes)
        info["mean_mouth_val_loss"] = _mean_mouth_val_loss(data, cfg)
        exp = export_onnx(model, data, pkg_dir)
        total = round(time.time() - t_start, 1)
        summary = {
            "seed": seed, "lookahead_ms": cfg.lookahead_ms, "n_params": info["n_params"],
            "val_loss": round(info["val_loss"], 5), "mean_mouth_val_loss": round(info["mean_mouth_val_loss"], 5),
            "val_opening_r": round(info["val_opening_r"], 4), "best_step": info["best_step"],
            "steps_run": info["steps_run"], "stopped": info["stopped"], "train_seconds": info["train_seconds"],
            "total_seconds": total, "onnx_bytes": exp["onnx_bytes"], "onnx_parity": exp["parity"],
            "calibration": info["calibration"],
        }
        (pkg_dir / "training.json").write_text(json.dumps({**summary, "config": cfg.to_dict(),
                                                            "history": info["history"]}, indent=1))
        update_package(pkg_dir, {"lip_model": {k: summary[k] for k in (
            "lookahead_ms", "n_params", "val_loss", "val_opening_r", "onnx_bytes")} | {"file": "lips.onnx"}})
    log.info("lip model written to %s in %.0f s (validation opening r %.3f, loss %.4f vs mean mouth %.4f)",
             path, total, info["val_opening_r"], info["val_loss"], info["mean_mouth_val_loss"])
    return summary
