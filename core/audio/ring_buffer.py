"""Single-producer / single-consumer ring buffer of float32 samples.

The producer is a real-time audio callback: `write` only copies into preallocated
memory (no allocation, no lock, no I/O). Positions are absolute sample counts, so a
reader always knows the index of the first sample it got — that index is what the
latency measurement hangs its timestamps on.
"""
from __future__ import annotations

import numpy as np


class SampleRing:
    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, np.float32)
        # Python ints: a single assignment is atomic under the GIL, which is all the
        # SPSC protocol needs (the writer only moves write_pos, the reader read_pos).
        self.write_pos = 0
        self.read_pos = 0
        self.overflows = 0  # reads that found the writer had lapped them
        self.samples_lost = 0

    def write(self, x: np.ndarray) -> None:
        """Copy `x` (1-D view) in. Called from the audio callback: no allocation."""
        n = x.shape[0]
        cap = self.capacity
        pos = self.write_pos
        if n > cap:  # larger than the whole ring: keep the newest samples, each at index % cap
            pos += n - cap
            x = x[n - cap:]
            n = cap
        start = pos % cap
        first = min(n, cap - start)
        self._buf[start:start + first] = x[:first]
        if first < n:
            self._buf[:n - first] = x[first:]
        self.write_pos = pos + n

    def available(self) -> int:
        return self.write_pos - self.read_pos

    def read(self, max_samples: int | None = None) -> tuple[int, np.ndarray]:
        """Return (absolute index of the first sample, samples) of everything new.

        If the writer lapped the reader, the oldest samples are gone: skip to what is
        still valid and count an overflow.
        """
        wp = self.write_pos
        rp = self.read_pos
        if wp - rp > self.capacity:
            self.overflows += 1
            self.samples_lost += wp - rp - self.capacity
            rp = wp - self.capacity
        n = wp - rp
        if max_samples is not None:
            n = min(n, max_samples)
        out = np.empty(n, np.float32)
        cap = self.capacity
        start = rp % cap
        first = min(n, cap - start)
        out[:first] = self._buf[start:start + first]
        if first < n:
            out[first:] = self._buf[:n - first]
        # The writer may have overwritten part of what we copied while we copied it.
        if self.write_pos - rp > self.capacity:
            lost = self.write_pos - rp - self.capacity
            self.overflows += 1
            self.samples_lost += lost
            out = out[min(lost, n):]
            rp += min(lost, n)
        self.read_pos = rp + len(out)
        return rp, out

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` with the next samples (for an output callback: no allocation).

        Returns how many were real; the rest of `out` is zero-filled (underrun).
        """
        n = min(out.shape[0], self.write_pos - self.read_pos)
        if n < 0:
            n = 0
        cap = self.capacity
        start = self.read_pos % cap
        first = min(n, cap - start)
        out[:first] = self._buf[start:start + first]
        if first < n:
            out[first:n] = self._buf[:n - first]
        out[n:] = 0.0
        self.read_pos += n
        return n

    def skip(self, n: int) -> int:
        """Drop up to n unread samples (used to shorten a delay line)."""
        n = max(0, min(n, self.write_pos - self.read_pos))
        self.read_pos += n
        return n

    def at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples at absolute integer `positions` (any order; for a reader that keys samples by time, not a
        consumer: `read_pos` does not move), and which of them are valid (written and not yet overwritten)."""
        pos = np.asarray(positions, np.int64)
        wp = self.write_pos
        ok = (pos < wp) & (pos >= wp - self.capacity + 1)
        out = np.where(ok, self._buf[pos % self.capacity], 0.0).astype(np.float32)
        # the writer may have lapped part of what we gathered meanwhile
        if self.write_pos != wp:
            ok &= pos >= self.write_pos - self.capacity + 1
            out[~ok] = 0.0
        return out, ok
