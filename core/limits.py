"""Bounds on what a user may ask for (output size, ...): one validator for every command and config file."""
from __future__ import annotations

from hygie.core.errors import HygieError

MIN_SIDE = 16
MAX_SIZE = (7680, 4320)  # 8K UHD: beyond it no encoder, camera or call app follows


def parse_size(s: str | None) -> tuple[int, int] | None:
    """'WIDTHxHEIGHT' -> (w, h), rounded down to even numbers (H.264 with yuv420p needs them); None -> None."""
    if not s:
        return None
    try:
        w, h = (int(v) for v in str(s).lower().split("x"))
    except ValueError:
        raise HygieError(f"size {s!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < MIN_SIDE or h < MIN_SIDE or w > MAX_SIZE[0] or h > MAX_SIZE[1]:
        raise HygieError(f"size {s!r}: out of range ({MIN_SIDE}x{MIN_SIDE} to {MAX_SIZE[0]}x{MAX_SIZE[1]}), "
                         "e.g. 1280x720")
    return w - w % 2, h - h % 2
