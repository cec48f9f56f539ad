"""Latency and frame-rate statistics with flat memory.

A latency sample is (frame sent) - (capture time of the audio sample the frame's
mouth shape stands for). The lip model answers for the mel frame `lookahead`
behind the newest, so its look-ahead is included by construction.
Whole-run percentiles come from a 0.5 ms histogram (bounded memory for a
30-minute call); the periodic report uses a window of the last few seconds.
"""
from __future__ import annotations

import json
import logging
from collections import deque

import numpy as np

from hygie.core.user_dirs import state_dir

log = logging.getLogger(__name__)

_BIN_S = 0.0005
_MAX_S = 2.0


def _hist_percentile(hist: np.ndarray, q: float) -> float | None:
    total = hist.sum()
    if total == 0:
        return None
    k = np.searchsorted(np.cumsum(hist), q / 100.0 * total)
    return float((min(k, len(hist) - 1) + 0.5) * _BIN_S)


class LatencyStats:
    def __init__(self, window: int = 150):
        self.window: deque[float] = deque(maxlen=window)
        self.hist = np.zeros(int(_MAX_S / _BIN_S) + 1, np.int64)
        self.n = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.window.append(seconds)
        self.hist[int(min(max(seconds, 0.0), _MAX_S) / _BIN_S)] += 1
        self.n += 1
        self.max = max(self.max, seconds)

    def window_percentiles(self) -> tuple[float | None, float | None]:
        if not self.window:
            return None, None
        a = np.fromiter(self.window, float)
        return float(np.percentile(a, 50)), float(np.percentile(a, 95))

    def percentiles(self) -> tuple[float | None, float | None]:
        return _hist_percentile(self.hist, 50), _hist_percentile(self.hist, 95)


class RateMeter:
    """Frames per second over a sliding window of send times."""

    def __init__(self, window: int = 90):
        self.times: deque[float] = deque(maxlen=window)
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def mark(self, t: float) -> None:
        self.times.append(t)
        self.count += 1
        if self.first is None:
            self.first = t
        self.last = t

    def current(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)

    def overall(self) -> float:
        if self.count < 2 or self.first is None or self.last is None:
            return 0.0
        return (self.count - 1) / max(self.last - self.first, 1e-9)


def fmt_ms(x: float | None) -> str:
    return "n/a" if x is None else f"{1000 * x:.0f} ms"


LATENCY_FILE = "latency.json"


def save_measured_latency(s: dict) -> None:
    """Keep the last run's p95 so `hygie obs setup` can set OBS's mic sync offset to it."""
    if s.get("latency_p95_ms") is None:
        return
    d = state_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / LATENCY_FILE).write_text(json.dumps({"p95_ms": round(s["latency_p95_ms"], 1),
                                                  "p50_ms": round(s.get("latency_p50_ms") or 0, 1)}))
    except OSError as e:
        log.debug("latency not saved: %s", e)


def measured_latency_ms() -> int | None:
    """The last run's measured p95 latency (ms), if one was saved."""
    try:
        return int(round(float(json.loads((state_dir() / LATENCY_FILE).read_text())["p95_ms"])))
    except (OSError, ValueError, KeyError, TypeError):
        return None
