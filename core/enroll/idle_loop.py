"""Choosing the idle loop: the stillest stretch of one video, ending on still, eyes-open frames."""
from __future__ import annotations

import logging

import numpy as np

from hygie.core.errors import HygieError

log = logging.getLogger(__name__)


def pick_stretch(lips_open: np.ndarray, poses: np.ndarray, usable: np.ndarray, eye_open: np.ndarray,
                   fps: float, seconds: float) -> tuple[int, int]:
    """Choose [a, b) of usable frames with the least head motion and mouth activity; ends at still, eyes-open frames."""
    n = len(usable)
    L = int(min(seconds * fps, n))
    vel = np.zeros(n)
    if n > 1:
        vel[1:] = np.linalg.norm(np.diff(poses[:, 10:13], axis=0), axis=1) + 0.02 * np.abs(np.diff(poses[:, 0]))
    vel = np.nan_to_num(vel, nan=1e3)
    bad = (~usable).astype(np.float64)
    # prefix sums give every window's cost in O(n)
    cs = lambda x: np.concatenate([[0], np.cumsum(x)])
    c_bad, c_vel, c_open = cs(bad), cs(vel), cs(np.nan_to_num(lips_open, nan=1.0))
    best, best_a = np.inf, 0
    min_len = int(min(fps, n))  # a loop shorter than 1 s looks mechanical
    while L >= min_len:
        for a in range(0, max(1, n - L + 1)):
            if c_bad[a + L] - c_bad[a] > 0:
                continue
            cost = (c_vel[a + L] - c_vel[a]) / L / (np.median(vel) + 1e-9) + (c_open[a + L] - c_open[a]) / L / (np.nanmedian(lips_open[usable]) + 1e-9)
            if cost < best:
                best, best_a = cost, a
        if np.isfinite(best):
            break
        L = int(L * 0.7)  # footage with gaps: settle for a shorter loop
    if not np.isfinite(best):
        raise HygieError("no stretch of continuous usable face footage long enough for the idle loop.")
    a, b = best_a, best_a + L
    # trim ends (up to 10% each) to still frames with open eyes so the ping-pong turn is invisible
    thr = np.nanpercentile(eye_open[usable], 30)
    k = max(1, L // 10)

    def end_cost(i: int) -> float:
        return vel[i] + (0 if eye_open[i] >= thr else 1e3)

    a2 = min(range(a, a + k), key=end_cost)
    b2 = min(range(b - k, b), key=end_cost) + 1
    return a2, b2



def choose_idle_loop(srcs: list, masks: list[np.ndarray], usable: np.ndarray, opening: np.ndarray,
                     poses: np.ndarray, eye_open: np.ndarray, fps: float, seconds: float) -> tuple[int, int, int]:
    """(source index, first, end) of the idle loop in the concatenated frame index: one contiguous stretch
    of a single video, the longest of each video's best."""
    best = None
    base = 0
    for vi, s in enumerate(srcs):
        m = masks[vi] & usable[base:base + len(s.track.times)]
        sl = slice(base, base + len(s.track.times))
        try:
            a, b = pick_stretch(opening[sl], poses[sl], m, eye_open[sl], fps, seconds)
        except HygieError:
            base += len(s.track.times)
            continue
        if best is None or (b - a) > (best[2] - best[1]):
            best = (vi, base + a, base + b)
        base += len(s.track.times)
    if best is None:
        raise HygieError("no stretch of continuous usable face footage for the idle loop; record a few seconds facing the camera without moving away.")
    return best
