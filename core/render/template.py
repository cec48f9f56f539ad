"""The idle loop: the person's own footage played forward then backward (ping-pong).

Ping-pong never jumps: the frame after the last is the one before it, so the turn is
as smooth as the footage (enrollment ends the loop on still, eyes-open frames).
Decoding a 720p JPEG costs 2-4 ms, so frames never decode on the render path when
avoidable: a small loop is decoded (and scaled to the output size) once into memory;
a large one is decoded ahead on a background thread in play order.
"""
from __future__ import annotations

import logging
import atexit
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from hygie.core.render.ahead import CopyAhead
from hygie.core.render.jpeg import decode_jpeg_blob

log = logging.getLogger(__name__)


@dataclass
class OutputTransform:
    """Template image pixels -> output pixels: out = scale * img + (ox, oy)."""

    size: tuple[int, int]  # output (w, h)
    scale: float
    ox: float
    oy: float

    @classmethod
    def fit(cls, src_size: tuple[int, int], out_size: tuple[int, int] | None, mode: str = "letterbox") -> "OutputTransform":
        """`letterbox` shows the whole frame with bars; `crop` fills the output and cuts the overflow."""
        sw, sh = src_size
        if out_size is None or tuple(out_size) == (sw, sh):
            return cls((sw, sh), 1.0, 0.0, 0.0)
        ow, oh = int(out_size[0]), int(out_size[1])
        if mode not in ("letterbox", "crop"):
            raise ValueError(f"fit mode must be 'letterbox' or 'crop', not {mode!r}")
        s = min(ow / sw, oh / sh) if mode == "letterbox" else max(ow / sw, oh / sh)
        return cls((ow, oh), s, round((ow - s * sw) / 2), round((oh - s * sh) / 2))

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.ox == 0 and self.oy == 0

    def points(self, p: np.ndarray) -> np.ndarray:
        return p * self.scale + np.array([self.ox, self.oy], np.float32)

    def matrix(self) -> np.ndarray:
        return np.array([[self.scale, 0, self.ox], [0, self.scale, self.oy]], np.float64)

    def image(self, img: np.ndarray) -> np.ndarray:
        import cv2

        if self.identity:
            return img
        interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        return cv2.warpAffine(img, self.matrix(), self.size, flags=interp, borderMode=cv2.BORDER_CONSTANT)


def landmark_points(frames: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """(L, len(ids), 2) float32 image pixels of landmarks `ids` in every frame of an idle loop (all 478
    landmarks stored) or of a body (only `landmark_ids` stored)."""
    lm = frames["landmarks"]
    ids = np.asarray(ids, np.int64)
    if "landmark_ids" in frames:
        where = {int(k): j for j, k in enumerate(frames["landmark_ids"])}
        missing = [int(k) for k in ids if int(k) not in where]
        if missing:
            raise ValueError(f"landmarks {missing[:5]} are not stored with these frames; re-run 'hygie enroll'")
        ids = np.array([where[int(k)] for k in ids], np.int64)
    return lm[:, ids, :2].astype(np.float32)


def pingpong_index(tick: int, n: int) -> int:
    """0, 1, ..., n-1, n-2, ..., 1, 0, 1, ...: each turn repeats no frame and skips none."""
    if n <= 1:
        return 0
    period = 2 * n - 2
    k = int(tick) % period
    return k if k < n else period - k


class TemplateLoop:
    """Output-size template frames by tick. `frame(tick)` is read-only: copy before drawing."""

    def __init__(self, avatar, tf: OutputTransform, memory_budget_mb: float = 384.0, ahead: int = 8,
                 copy_ahead_bytes: int = 1 << 20):
        t = avatar.template
        self.jpeg, self.offsets = t["jpeg"], t["offsets"]
        self.n = len(self.offsets) - 1
        if self.n < 1:
            raise ValueError("the avatar's idle loop has no frames")
        self.tf = tf
        w, h = tf.size
        first = decode_jpeg_blob(self.jpeg, self.offsets, 0)
        budget = memory_budget_mb * 2 ** 20
        # native frames in memory when they fit: a miss then costs a resize, not a JPEG decode
        self._native: list[np.ndarray] | None = None
        if self.n * first.nbytes <= budget:
            self._native = [first] + [decode_jpeg_blob(self.jpeg, self.offsets, i) for i in range(1, self.n)]
        self.in_memory = self.n * w * h * 3 <= budget and (tf.identity or self._native is not None)
        self._frames: list[np.ndarray | None] = [None] * self.n
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._ahead = ahead
        self._lock = threading.Lock()
        self._want = threading.Condition(self._lock)
        self._next_tick = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        # output frames of at least this size (720p: 2.8 MB) are copied for the frame path on a thread
        # (core/render/ahead.py); a small frame's copy costs less than handing it over
        self._copier: CopyAhead | None = CopyAhead(self.frame, "hygie-template-copy") \
            if w * h * 3 >= copy_ahead_bytes else None
        if self.in_memory:
            for i in range(self.n):
                self._frames[i] = self._decode(i)
        else:
            log.info("idle loop of %d frames at %dx%d exceeds %.0f MB: %s ahead on a thread", self.n, w, h,
                     memory_budget_mb, "scaling" if self._native is not None else "decoding")
            # the thread holds only a weak reference, and stops at exit: a daemon thread still
            # inside OpenCV when the interpreter tears down aborts the process
            self._thread = threading.Thread(target=_prefetch_loop, args=(weakref.ref(self),),
                                            name="hygie-template", daemon=True)
            self._thread.start()
            _live.add(self)

    def native(self, i: int) -> np.ndarray:
        """Template frame i at the video's own size."""
        if self._native is not None:
            return self._native[i]
        return decode_jpeg_blob(self.jpeg, self.offsets, i)

    def _decode(self, i: int) -> np.ndarray:
        return np.ascontiguousarray(self.tf.image(self.native(i)))

    def index(self, tick: int) -> int:
        return pingpong_index(tick, self.n)

    def frame(self, tick: int) -> np.ndarray:
        i = self.index(tick)
        if self.in_memory:
            return self._frames[i]  # type: ignore[return-value]
        with self._lock:
            self._next_tick = tick + 1
            self._want.notify()
            img = self._cache.get(i)
        if img is None:  # prefetch fell behind (first frame, or a jump in ticks)
            img = self._decode(i)
            with self._lock:
                self._put(i, img)
        return img

    def take(self, tick: int) -> np.ndarray:
        """A copy of `frame(tick)` the caller owns (draws into), made ahead when the frames are large."""
        if self._copier is not None:
            return self._copier.take(tick)
        return self.frame(tick).copy()

    def _put(self, i: int, img: np.ndarray) -> None:
        self._cache[i] = img
        self._cache.move_to_end(i)
        while len(self._cache) > 2 * self._ahead + 2:
            self._cache.popitem(last=False)

    def _prefetch_step(self) -> bool:
        """Decode one frame the player will need soon; False when asked to stop."""
        with self._lock:
            if not self._stop and all(self.index(self._next_tick + k) in self._cache for k in range(self._ahead)):
                self._want.wait(0.2)
            if self._stop:
                return False
            todo = [i for i in (self.index(self._next_tick + k) for k in range(self._ahead)) if i not in self._cache]
        if todo:
            img = self._decode(todo[0])
            with self._lock:
                self._put(todo[0], img)
        return True

    def close(self) -> None:
        if self._copier is not None:
            self._copier.close()
        with self._lock:
            self._stop = True
            self._want.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        _live.discard(self)



_live: "weakref.WeakSet[TemplateLoop]" = weakref.WeakSet()


def _prefetch_loop(ref: "weakref.ref[TemplateLoop]") -> None:
    while True:
        loop = ref()
        if loop is None or not loop._prefetch_step():
            return
        del loop


@atexit.register
def _stop_all() -> None:
    for loop in list(_live):
        loop.close()
