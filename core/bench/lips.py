"""Lip-model micro-benchmark for `hygie bench`: one streaming step in onnxruntime on one thread."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np

from hygie.core.lips.model import DESC_FILE, MODEL_FILE, LipModel

log = logging.getLogger(__name__)


def _time_each(step: Callable[[np.ndarray], Any], frames: np.ndarray) -> np.ndarray:
    """Seconds taken by `step` on each single-frame slice of `frames`."""
    out = np.empty(len(frames))
    for i in range(len(frames)):
        t0 = time.perf_counter()
        step(frames[i:i + 1])
        out[i] = time.perf_counter() - t0
    return out


def run(avatar: Any, n_steps: int = 2000, threads: int = 1) -> dict[str, Any]:
    """Median/p99 time of one 1-frame step (session only, and with normalisation), file size, parameters."""
    lip = LipModel(avatar, threads=threads)
    rng = np.random.default_rng(0)
    mel = rng.normal(-6.0, 2.0, size=(n_steps, lip.n_mels)).astype(np.float32)
    z = lip.norm(mel)
    for i in range(100):  # warm-up
        lip._run(z[i:i + 1])
    t_sess = _time_each(lip._run, z)
    lip.reset()
    t_push = _time_each(lip.push, mel)
    lip.reset()
    size = (avatar.path / MODEL_FILE).stat().st_size
    res = {
        "step_ms_median": float(np.median(t_sess) * 1e3), "step_ms_p99": float(np.percentile(t_sess, 99) * 1e3),
        "push_ms_median": float(np.median(t_push) * 1e3), "push_ms_p99": float(np.percentile(t_push, 99) * 1e3),
        "threads": threads, "onnx_bytes": int(size), "n_params": int(lip.desc.get("n_params", 0)),
        "lookahead_ms": 1000 * lip.lookahead_s, "description": DESC_FILE,
    }
    log.info("lip step %.3f ms (p99 %.3f), push incl. normalisation %.3f ms, %.0f kB, %d parameters",
             res["step_ms_median"], res["step_ms_p99"], res["push_ms_median"], size / 1024, res["n_params"])
    return res


def format_result(res: dict[str, Any]) -> str:
    return (f"lip model: step {1000 * res['step_ms_median']:.0f} µs median ({1000 * res['step_ms_p99']:.0f} µs p99) on "
            f"{res['threads']} thread, with normalisation {1000 * res['push_ms_median']:.0f} µs; "
            f"lips.onnx {res['onnx_bytes'] / 1024:.0f} kB, {res['n_params']} parameters, "
            f"look-ahead {res['lookahead_ms']:.0f} ms")
