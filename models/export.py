"""Export a trained LipNet to ONNX (TorchScript exporter, opset 17, ONNX GRU op) with its description.

lips.onnx: inputs `mel` (1, n, n_mels) normalised + one tensor per state; outputs `coeffs` (1, n, K) +
the new states. n is dynamic: one frame per call live, a whole file offline, same numbers.
lips.onnx.json: names, state shapes, look-ahead, mel parameters, normalisation, PCA size.
The export is checked against torch (<= 1e-4) and chunked streaming against one call.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hygie.core.errors import HygieError
from hygie.core.lips.model import DESC_FILE, DESC_FORMAT, DESC_VERSION, MODEL_FILE
from hygie.models.dataset import LipData
from hygie.models.lipnet import LipNet

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOL = 1e-4


def state_names(model: LipNet) -> list[tuple[str, str]]:
    return [(n, n + "_out") for n in model.state_names()]


def _ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def parity(model: LipNet, onnx_path: Path, x: np.ndarray, chunk: int = 7) -> dict[str, float]:
    """Max abs difference torch vs ONNX (one call) and ONNX one call vs ONNX chunked streaming."""
    sess = _ort_session(onnx_path)
    names = state_names(model)
    init = [s.numpy() for s in model.initial_state()]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None], *model.initial_state())[0][0].numpy()
    full = sess.run(["coeffs"], {"mel": x[None], **{n: s for (n, _), s in zip(names, init)}})[0][0]
    state = dict(zip([n for n, _ in names], init))
    parts = []
    for i in range(0, len(x), chunk):
        outs = sess.run(["coeffs"] + [o for _, o in names], {"mel": x[None, i:i + chunk], **state})
        parts.append(outs[0][0])
        state = {n: v for (n, _), v in zip(names, outs[1:])}
    stream = np.concatenate(parts)
    return {"torch_vs_onnx": float(np.abs(ref - full).max()), "stream_vs_offline": float(np.abs(stream - full).max())}


def export_onnx(model: LipNet, data: LipData, out_dir: Path, check_input: np.ndarray | None = None) -> dict[str, Any]:
    """Write lips.onnx + lips.onnx.json into out_dir; returns sizes and parity figures."""
    out_dir = Path(out_dir)
    model = model.eval()
    names = state_names(model)
    x = torch.zeros(1, 5, model.cfg.n_mels)
    dyn = {"mel": {1: "n"}, "coeffs": {1: "n"}}
    onnx_path = out_dir / MODEL_FILE
    tmp = out_dir / ".lips.onnx.tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x, *model.initial_state()), str(tmp), input_names=["mel"] + [n for n, _ in names],
                          output_names=["coeffs"] + [o for _, o in names], dynamic_axes=dyn, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
    if check_input is None:
        rng = np.random.default_rng(0)
        check_input = rng.standard_normal((203, model.cfg.n_mels)).astype(np.float32)
    par = parity(model, tmp, np.asarray(check_input, np.float32))
    if max(par.values()) > PARITY_TOL:
        tmp.unlink(missing_ok=True)
        raise HygieError(f"ONNX export does not match torch ({par}); please report this with your torch/onnx versions.")
    tmp.replace(onnx_path)
    shapes = model.state_shapes(1)
    desc = {
        "format": DESC_FORMAT,
        "format_version": DESC_VERSION,
        "file": MODEL_FILE,
        "opset": OPSET,
        "inputs": {"mel": "mel"},
        "outputs": {"coeffs": "coeffs"},
        "input_shape": [1, "n", model.cfg.n_mels],
        "output_shape": [1, "n", model.cfg.n_out],
        "states": [{"input": n, "output": o, "shape": list(s), "init": "zeros"} for (n, o), s in zip(names, shapes)],
        "lookahead_frames": model.cfg.lookahead,
        "lookahead_ms": model.cfg.lookahead * 1000.0 / data.mel_config.frame_rate,
        "output_frame": "row j stands for the mel frame lookahead_frames behind input frame j",
        "mel": data.mel_config.to_dict(),
        "normalisation": data.norm.to_dict(),
        "n_components": model.cfg.n_out,
        "network": model.cfg.to_dict() | {"members": len(getattr(model, "members", [model]))},
        "n_params": model.n_params(),
        "parity": par,
    }
    (out_dir / DESC_FILE).write_text(json.dumps(desc, indent=1))
    size = onnx_path.stat().st_size
    log.info("exported %s (%.0f kB, parity torch %.1e, streaming %.1e)", onnx_path, size / 1024,
             par["torch_vs_onnx"], par["stream_vs_offline"])
    return {"onnx_bytes": size, "parity": par}
