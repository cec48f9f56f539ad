"""Output frames copied ahead on a thread: the idle loop's copy of the next template frame.

The renderer draws the mouth into a copy of the template frame. At 1080p that copy is ~6 MB and
~1 ms, a third of the frame path; the next tick's copy does not depend on anything the frame path
computes, so a thread makes it while the current tick renders (numpy's copy releases the GIL), and
`take` only hands it over. Same bytes as `frame(tick).copy()`; a tick that was not copied ahead
(the first one, a jump in ticks, a repeat of a tick) is copied on the spot.
"""
from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


class CopyAhead:
    """`take(tick)` = a private copy of `frame(tick)`, made ahead for tick + 1 after each take."""

    def __init__(self, frame: Callable[[int], np.ndarray], name: str = "hygie-copy-ahead"):
        self._frame = frame  # read-only frame by tick; must be safe to call from the copy thread
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._next: int | None = None  # the tick to copy ahead (None: nothing asked yet)
        self._ready: tuple[int, np.ndarray] | None = None  # one copy at most: bounded memory
        self._stop = False
        self.served = 0  # takes served by a copy made ahead
        self._thread = threading.Thread(target=_copy_loop, args=(weakref.ref(self),), name=name, daemon=True)
        self._thread.start()
        _live.add(self)

    def take(self, tick: int) -> np.ndarray:
        tick = int(tick)
        with self._lock:
            r, self._ready = self._ready, None
            self._next = tick + 1
            self._cond.notify_all()
        if r is not None and r[0] == tick:
            self.served += 1
            return r[1]
        return self._frame(tick).copy()

    def _step(self) -> bool:
        """Make one copy ahead; False when asked to stop."""
        with self._lock:
            while not self._stop and (self._next is None or self._ready is not None):
                self._cond.wait(0.5)
            if self._stop:
                return False
            t = self._next
        out = self._frame(t).copy()  # outside the lock: the frame path goes on
        with self._lock:
            if self._next == t and not self._stop:  # else overtaken by a take of another tick: dropped
                self._ready = (t, out)
        return True

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._ready = None
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        _live.discard(self)


_live: "weakref.WeakSet[CopyAhead]" = weakref.WeakSet()


def _copy_loop(ref: "weakref.ref[CopyAhead]") -> None:
    while True:
        c = ref()
        if c is None:
            return
        try:
            if not c._step():
                return
        except Exception:  # the frame path copies (and reports) itself
            log.exception("copy-ahead stopped")
            return
        del c


@atexit.register
def _stop_all() -> None:
    for c in list(_live):
        c.close()
