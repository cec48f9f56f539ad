"""`hygie train AVATAR`: (re)train the lip model of an avatar package (needs the 'train' extra: torch)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hygie.core.errors import HygieError
from hygie.core.limits import number_arg

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the lip model of an avatar package (voice -> mouth shape), a few minutes on a CPU",
        description=(
            "Train the small streaming network that turns log-mel audio into the avatar's mouth-shape "
            "coefficients, on the package's own enrollment audio and landmarks (the last 10%% by time is held "
            "out for validation and early stopping). Writes lips.onnx, lips.onnx.json and training.json into "
            "the package and refreshes its hashes. Needs torch: pip install 'hygie-avatar[train]'."
        ),
    )
    p.add_argument("avatar", type=Path, help="avatar package folder (or .hygie file) made by 'hygie enroll'")
    p.add_argument("--lookahead-ms", type=number_arg(0, 500), default=None,
                   help="audio the model may hear after the frame it animates (default 50 ms; it adds to the "
                        "live latency one for one; 0–120 ms are sensible, more = a little more accurate)")
    p.add_argument("--seed", type=number_arg(0, 2**31 - 1, integer=True), default=0, help="random seed (same seed and steps: same model)")
    p.add_argument("--steps", "--epochs", dest="steps", type=number_arg(1, 10_000_000, integer=True), default=None,
                   help="training steps (default 600; early stopping may end sooner)")
    p.add_argument("--minutes", type=number_arg(0.05, 24 * 60), default=None, help="stop training after this many minutes (default 4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from hygie.models.train import train_package
    except ImportError as e:
        raise HygieError(f"training needs torch ({e}). Install the 'train' extra: pip install 'hygie-avatar[train]'.") from e
    res = train_package(args.avatar, seed=args.seed, lookahead_ms=args.lookahead_ms, steps=args.steps,
                        minutes=args.minutes)
    print(f"lip model trained in {res['total_seconds']:.0f} s: validation opening r {res['val_opening_r']:.3f}, "
          f"loss {res['val_loss']:.4f} (mean mouth {res['mean_mouth_val_loss']:.4f}), look-ahead "
          f"{res['lookahead_ms']:.0f} ms, {res['n_params']} parameters, lips.onnx {res['onnx_bytes'] / 1024:.0f} kB")
    return 0
