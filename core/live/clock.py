"""A frame clock on an absolute schedule: tick n is due at t0 + n / fps.

An absolute schedule never drifts (a relative `sleep(1/fps)` accumulates the
loop's own time). If the loop falls more than `max_behind` frames behind (a stall,
a suspended laptop) the schedule restarts from now instead of bursting frames.
"""
from __future__ import annotations

import time


class FrameClock:
    def __init__(self, fps: float, max_behind: int = 2):
        if fps <= 0:
            raise ValueError("fps must be > 0")
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self.max_behind = max_behind
        self.t0: float | None = None
        self.n = 0  # index of the next tick within the current schedule
        self.tick = 0  # ticks handed out in total
        self.resyncs = 0
        self.late = 0  # ticks that started after their due time + half a period

    def start(self, now: float | None = None) -> None:
        self.t0 = time.perf_counter() if now is None else now
        self.n = 0

    def next_due(self) -> float:
        if self.t0 is None:
            self.start()
        return self.t0 + self.n * self.period

    def wait(self) -> int:
        """Sleep until the next tick is due; return its index."""
        due = self.next_due()
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)  # overshoots ~0.1 ms on Linux; spinning would cost CPU
        elif now - due > self.max_behind * self.period:
            self.resyncs += 1
            self.start(now)
        elif now - due > 0.5 * self.period:
            self.late += 1
        self.n += 1
        t = self.tick
        self.tick += 1
        return t
