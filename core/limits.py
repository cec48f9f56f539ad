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


MAX_FPS = 120.0
MAX_DURATION_S = 7 * 24 * 3600.0  # a week: any longer `--duration` is a typo


def check_number(value: object, name: str, lo: float, hi: float, integer: bool = False) -> float | int:
    """A finite number (an integer when asked) in [lo, hi], or a one-line error naming the setting and the range."""
    import math

    kind = "a whole number" if integer else "a number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and lo <= value <= hi and (not integer or float(value).is_integer())
    if not ok:
        raise HygieError(f"{name} {value!r}: expected {kind} from {lo:g} to {hi:g}.")
    return int(value) if integer else float(value)


def check_fps(value: object, name: str = "fps") -> float:
    return check_number(value, name, 1, MAX_FPS)  # type: ignore[return-value]


def check_duration(value: object, name: str = "duration") -> float | None:
    """Seconds to run, > 0; None means until stopped."""
    if value is None:
        return None
    return check_number(value, name, 0.001, MAX_DURATION_S)  # type: ignore[return-value]


def number_arg(lo: float, hi: float, integer: bool = False):
    """An argparse `type=` that parses and bounds a number with the same rule (`--fps nan` is refused)."""
    import argparse

    def parse(text: str) -> float | int:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        try:
            return check_number(v, "", lo, hi, integer)
        except HygieError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {'a whole number' if integer else 'a number'} "
                                             f"from {lo:g} to {hi:g}") from None
    parse.__name__ = "number"
    return parse
