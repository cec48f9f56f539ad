"""The body at run time: a seeded random walk over the enrollment's motion graph, decoded ahead.

`BodyWalker` picks the body frame of each tick: it plays the footage in its own order and takes a
jump (an invisible cut, `enroll/body.py`) about once a second, to frames not shown for the longest
time, so no stretch comes back within many minutes. While voice is present it prefers the frames
where the person spoke, in silence those where they listened; a pool change waits for a jump,
so it never shows as one.

`BodyPlayer` has the idle loop's interface (`n`, `index`, `frame`, `take`, `native`, `close`): the
renderer uses it in place of `TemplateLoop` when the package holds a body. The walk is planned
`ahead` ticks early and a thread decodes those frames from `body.mp4` (H.264, short GOP: a seek costs
at most one GOP of decoding) and, for the next `ready` ticks, makes the output frame itself (a copy,
or the cross-fade's blend), so the frame path only takes a ready frame (`take`): at 1080p a copy is
~1 ms and a cross-fade blend ~3 ms that no longer sit on the frame path.
"""
from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)
CACHE_BUDGET_BYTES = 64 << 20  # decoded body frames kept beyond the decode-ahead window

_HP = (1 << 61) - 1  # the window guard's rolling hash: a Mersenne prime modulus
_HB = 1_000_003


@dataclass
class WalkerConfig:
    run_s: float = 1.0  # mean footage played between jumps
    min_run_s: float = 0.4  # never jump again sooner than this (unless the voice asks for the other pool)
    max_run_s: float = 1.6  # jump at the first chance after this long: a 2-s stretch never plays twice
    recent_s: float = 600.0  # a frame shown within this long counts as stale
    pool_switch: float = 0.6  # per-tick chance of leaving the wrong pool where a jump allows it
    top: int = 3  # a jump is drawn among this many best targets
    escape: float = 8.0  # when even the best jump scores this badly, draw among all of them
    cost_weight: float = 1.0  # how much a jump's visible change counts against staleness (12) and pool (6)
    pool_weight: float = 10.0  # score of a stretch that does not fit the voice (speaking vs listening footage)
    pose_weight: float = 3.0  # score per degree of head rotation a jump adds (a jump's pose change shows as head speed)
    lookahead: bool = True  # judge a way on by the stretch it plays (max_run_s) and that stretch's ways out,
    # not by its first frame: a few takes' frames that only jump among themselves are a trap every frame of which
    # looks fresh until the walk is inside it
    window_s: float = 2.0  # no sequence of frames this long is shown twice within recent_s where a jump can avoid it
    # (0: off). Staleness alone lets a long walk fall into loops of a few stretches; this guard checks the
    # exact sequence each candidate frame would complete (a rolling hash), so the walk leaves a loop at once
    # leave a stretch before an edit of the footage (a take join, marked `hard` at enrollment) when a jump
    # can: a faded jump is a smaller change than the join's jump cut of the whole frame
    # off by default: on GRID's 3-s takes it trades fewer joins shown for livelier, less smooth jumps
    # (docs/body.md, "Leaving before an edit")
    avoid_edits: bool = False
    edit_cost: float = 12.0  # how bad playing through an edit scores, against a jump's score
    seed: int = 0


class BodyGraph:
    """The motion graph of body.npz: successors, jumps (CSR), pools."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.alive = arrays["alive"].astype(bool)
        self.n = len(self.alive)
        nxt = arrays["next"].astype(np.int64)
        self.next = np.where((nxt >= 0) & self.alive[np.maximum(nxt, 0)], nxt, -1)
        self.speaking = arrays["speaking"].astype(bool)
        js, jd, jc = arrays["jump_from"], arrays["jump_to"], arrays["jump_cost"].astype(np.float32)
        jf = arrays["jump_fade"].astype(bool) if "jump_fade" in arrays else np.zeros(len(js), bool)
        self.fade = int(arrays["fade"]) if "fade" in arrays else 0
        ok = self.alive[js] & self.alive[jd]
        js, jd, jc, jf = js[ok], jd[ok], jc[ok], jf[ok]
        order = np.argsort(js, kind="stable")
        self.j_to, self.j_cost, self.j_fade = jd[order].astype(np.int64), jc[order], jf[order]
        self.j_start = np.searchsorted(js[order], np.arange(self.n + 1))
        # what a frame leads into: the share of speaking frames among it and its next 11 (a jump's
        # target is judged by the stretch it starts, not by one frame)
        sp = self.speaking.astype(np.float32)
        acc, cur = sp.copy(), np.arange(self.n)
        for _ in range(11):
            cur = np.where(cur >= 0, self.next[np.maximum(cur, 0)], -1)
            acc += np.where(cur >= 0, sp[np.maximum(cur, 0)], sp)
        self.speak_ahead = acc / 12.0
        # frames from each one to the next that can jump (a stretch the walk cannot leave)
        has_jump = self.j_start[1:] > self.j_start[:-1]
        self.free_run = np.zeros(self.n, np.int64)
        for i in range(self.n - 1, -1, -1):
            nx = self.next[i]
            self.free_run[i] = 0 if has_jump[i] else (1 + self.free_run[nx] if nx >= 0 else 0)
        # the footage's own edits (a take join: `hard`, the step from i to next[i]): playing through one
        # shows a jump cut of the whole frame. `edit_bound[i]`: from i, playing on reaches an edit before
        # any frame that can jump, so the walk must leave before i (old packages: no edits recorded)
        hard = arrays["hard"].astype(bool) if "hard" in arrays else np.zeros(self.n, bool)
        self.hard = hard & (self.next >= 0)
        # `edit_room[i]`: frames from i until the walk must leave before an edit (n: no edit ahead): a jump
        # landing close to an edit would be forced on at once, from one take's end to another's.
        # `edit_at[i]`: the frame where that happens (-1: none ahead): a forced jump must not land on the
        # way back to it. One backward pass: each depends only on its successor's values
        self.edit_bound = np.zeros(self.n, bool)
        self.edit_room = np.full(self.n, self.n, np.int64)
        self.edit_at = np.full(self.n, -1, np.int64)
        for i in range(self.n - 1, -1, -1):
            nx = self.next[i]
            leave = bool(self.hard[i]) or (nx >= 0 and bool(self.edit_bound[nx]))
            self.edit_bound[i] = leave and not has_jump[i]
            if leave:
                self.edit_room[i], self.edit_at[i] = 0, i
            elif nx >= 0:
                self.edit_room[i], self.edit_at[i] = min(self.n, 1 + self.edit_room[nx]), self.edit_at[nx]
        # after a jump lands on j it plays the whole cross-fade: its first chance to jump again
        land = np.arange(self.n)
        for _ in range(self.fade + 1):
            land = np.where(land >= 0, self.next[np.maximum(land, 0)], -1)
        self.trap_after_landing = np.where(land >= 0, self.free_run[np.maximum(land, 0)] + self.fade + 1, 0)
        self.blink = arrays["blink"].astype(bool) if "blink" in arrays else np.zeros(self.n, bool)
        # the head rotation a jump adds (degrees, between the frame that would have come and the target)
        src = np.repeat(np.arange(self.n), np.diff(self.j_start))
        if "pose" in arrays and len(src):
            R = _smooth_rotations(np.asarray(arrays["pose"], np.float64)[:, 1:10].reshape(-1, 3, 3), self.next)
            a = np.where(self.next[src] >= 0, self.next[src], src)
            tr = np.einsum("nij,nij->n", R[a], R[self.j_to])
            self.j_pose = np.degrees(np.arccos(np.clip((tr - 1) / 2, -1.0, 1.0))).astype(np.float32)
        else:
            self.j_pose = np.zeros(len(self.j_to), np.float32)

    def lookahead(self, k: int, stride: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """(n, k / stride) every stride-th frame a frame plays on into (the last one repeated at an end) and
        (n, 2 k / stride) the two best jump targets of each of them (-1: none). Sampled: the walk's step stays cheap."""
        chain = np.empty((self.n, k), np.int64)
        cur = np.arange(self.n)
        for q in range(k):
            chain[:, q] = cur
            nx = self.next[cur]
            cur = np.where(nx >= 0, nx, cur)
        chain = chain[:, ::stride]
        cnt = self.j_start[1:] - self.j_start[:-1]
        last = max(len(self.j_to) - 1, 0)
        to = self.j_to if len(self.j_to) else np.zeros(1, np.int64)
        first = np.where(cnt > 0, to[np.minimum(self.j_start[:-1], last)], -1)
        second = np.where(cnt > 1, to[np.minimum(self.j_start[:-1] + 1, last)], -1)
        exits = np.concatenate([first[chain], second[chain]], axis=1)
        return chain, exits

    def jumps(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b = self.j_start[i], self.j_start[i + 1]
        return self.j_to[a:b], self.j_cost[a:b], self.j_fade[a:b]

    def start(self) -> int:
        cand = np.flatnonzero(self.alive & ~self.speaking)
        if not len(cand):
            cand = np.flatnonzero(self.alive)
        return int(cand[0])


def _smooth_rotations(R: np.ndarray, nxt: np.ndarray, half: int = 3) -> np.ndarray:
    """Head rotations averaged over +-half frames along the footage (FaceMesh jitters ~0.5 degree a frame,
    as much as a jump's real pose change), back to the nearest rotation."""
    n = len(R)
    prv = np.full(n, -1, np.int64)
    ok = nxt >= 0
    prv[nxt[ok]] = np.flatnonzero(ok)
    acc, cnt = R.copy(), np.ones(n)
    for step in (nxt, prv):
        cur = np.arange(n)
        for _ in range(half):
            cur = np.where(cur >= 0, step[np.maximum(cur, 0)], -1)
            m = cur >= 0
            acc[m] += R[cur[m]]
            cnt[m] += 1
    u, _, vt = np.linalg.svd(acc / cnt[:, None, None])
    return u @ vt


@dataclass(frozen=True)
class Shot:
    """What one tick shows: body frame `node`; during a cross-fade also `fade` (the stretch fading
    out, weight `w`); the mouth is pasted with `node`'s geometry."""

    node: int
    fade: int = -1
    w: float = 0.0


class BodyWalker:
    """One body frame per tick; deterministic for a seed and the voice it is given."""

    def __init__(self, graph: BodyGraph, fps: float, cfg: WalkerConfig | None = None):
        self.g = graph
        self.cfg = cfg or WalkerConfig()
        self.fps = fps
        self.reset()

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.cfg.seed)
        self.cur = -1
        self.t = -1
        self.run = 0
        self.last = np.full(self.g.n, -10 ** 9, np.int64)
        # jump (from, to) -> the tick it was last taken; only jumps within recent_s count (then forgotten in
        # tick order, like the window guard's hashes: a long call must not grow it without end)
        self.edge_last: dict[tuple[int, int], int] = {}
        self._edge_order: deque[tuple[int, tuple[int, int]]] = deque()
        self.jumped = 0
        self._fading = -1  # the stretch fading out (its frame at this tick), -1: none
        self._fade_left = 0
        # the window guard: a rolling hash of the last W - 1 frames shown, and the hashes of every
        # W-frame window shown within recent_s (hash -> its last tick, expired in tick order)
        self._W = int(round(self.cfg.window_s * self.fps)) if self.cfg.window_s > 0 else 0
        self._tail: deque[int] = deque()
        self._prefix = 0
        self._top_pow = pow(_HB, max(self._W - 2, 0), _HP)
        self._seen: dict[int, int] = {}
        self._seen_order: deque[tuple[int, int]] = deque()
        self.avoided = 0  # windows the guard kept from repeating
        self._route: deque[int] = deque()  # frames to follow out of a trap (`_route_out`), empty: none
        self.escapes = 0  # routes taken out of traps
        self.edits_avoided = 0  # jumps taken because playing on would show an edit of the footage
        if self.cfg.lookahead and not hasattr(self, "_chain"):
            self._chain, self._exits = self.g.lookahead(max(1, int(self.cfg.max_run_s * self.fps)))

    def step(self, voice: bool) -> Shot:
        g = self.g
        self.t += 1
        if self._fade_left > 0 and self.cur >= 0 and g.next[self.cur] < 0:
            # the landed stretch ends inside the fade (its successor was pruned from the graph): leave it by a
            # jump now. Playing on would reach no frame (-1), and restarting from g.start() each time made a
            # 30-frame loop that the window guard cannot see
            self._fade_left = 0
        if self.cur < 0:
            self.cur = g.start()
            shot = Shot(self.cur)
        elif self._fade_left > 0:  # inside a cross-fade: both stretches play on
            self.cur = int(g.next[self.cur])
            self._fading = int(g.next[self._fading])
            shot = Shot(self.cur, self._fading, self._fade_left / (g.fade + 1)) if self._fading >= 0 else Shot(self.cur)
            self._fade_left -= 1
            if self._fading < 0:
                self._fade_left = 0
            self._follow(self.cur)
        else:
            prev = self.cur
            self.cur, fade = self._choose(prev, voice)
            if fade and g.fade > 0 and g.next[prev] >= 0:
                self._fading = int(g.next[prev])
                self._fade_left = g.fade - 1
                shot = Shot(self.cur, self._fading, g.fade / (g.fade + 1))
            else:
                shot = Shot(self.cur)
        self.last[self.cur] = self.t
        if self._W:
            self._remember(self.cur)
        return shot

    # -- the window guard ------------------------------------------------------------------------
    def _window(self, x: int) -> int:
        """Hash of the window the last W - 1 frames and frame x make (-1 until W - 1 frames are shown)."""
        if len(self._tail) < self._W - 1:
            return -1
        return (self._prefix * _HB + x + 1) % _HP

    def _repeats(self, x: int) -> bool:
        h = self._window(x)
        return h >= 0 and h in self._seen

    def _repeats_path(self, j: int, n: int) -> bool:
        """Whether landing on j and playing on until the walk can jump again (n frames of cross-fade, then
        frames without jumps) repeats a window."""
        if not self._W or len(self._tail) < self._W - 1:
            return False
        tail, p = self._tail, self._prefix
        n = min(max(n, int(self.g.trap_after_landing[j]) - 1), self._W - 2)
        for k in range(n + 1):
            h = (p * _HB + j + 1) % _HP
            if h in self._seen:
                return True
            if k == n:
                break
            # the window after this one: the oldest frame leaves the prefix, j joins it
            p = ((p - tail[k] * self._top_pow) * _HB + j + 1) % _HP
            j = int(self.g.next[j])
            if j < 0:
                return False
        return False

    def _remember(self, x: int) -> None:
        h = self._window(x)
        if h >= 0:
            self._seen[h] = self.t
            self._seen_order.append((self.t, h))
            horizon = self.t - self.cfg.recent_s * self.fps
            while self._seen_order and self._seen_order[0][0] < horizon:
                t0, h0 = self._seen_order.popleft()
                if self._seen.get(h0) == t0:
                    del self._seen[h0]
        # the prefix: the last W - 1 frames
        if len(self._tail) == self._W - 1:
            self._prefix = (self._prefix - self._tail.popleft() * self._top_pow) % _HP
        self._prefix = (self._prefix * _HB + x + 1) % _HP
        self._tail.append(x + 1)

    def _forget_edges(self, recent: float) -> None:
        """Drop jumps taken `recent` ticks ago or more: `used` in _choose no longer counts them."""
        horizon = self.t - recent
        order = self._edge_order
        while order and order[0][0] <= horizon:
            t0, e = order.popleft()
            if self.edge_last.get(e) == t0:  # not taken again since
                del self.edge_last[e]

    def _stale(self, j: np.ndarray) -> np.ndarray:
        """1 for a frame just shown, 0 for one not shown within recent_s."""
        return np.maximum(1.0 - (self.t - self.last[j]) / (self.cfg.recent_s * self.fps), 0.0)

    def _fresh(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(0 fresh .. 12 just shown, first frame's staleness) of each way on x: judged by its first frame, or
        (lookahead) by the stretch it plays and the best way out of that stretch. One gather: a cheap step."""
        if not self.cfg.lookahead:
            st = self._stale(x)
            return 12.0 * st, st
        ch, ex = self._chain[x], self._exits[x]
        m = ch.shape[1]
        st = self._stale(np.concatenate([ch, np.maximum(ex, 0)], axis=1))
        out = np.where(ex >= 0, st[:, m:], 1.0).min(1)
        return 6.0 * st[:, :m].mean(1) + 6.0 * out, st[:, 0]

    def _choose(self, i: int, voice: bool) -> tuple[int, bool]:
        g, c = self.g, self.cfg
        nxt = int(g.next[i])
        to, cost, fade = g.jumps(i)
        self.run += 1
        if self._route:  # on the way out of a trap
            j = self._route.popleft()
            if j == nxt:
                return nxt, False
            k = np.flatnonzero(to == j)
            if len(k):
                return self._jump(i, j), bool(fade[k[0]])
            self._route.clear()
        if not len(to):
            if nxt < 0:  # cannot happen in a pruned graph; restart rather than stop
                return g.start(), False
            return nxt, False
        want = float(voice)
        recent = c.recent_s * self.fps
        self._forget_edges(recent)
        used = np.array([self.t - self.edge_last.get((i, int(j)), -10 ** 9) < recent for j in to])
        # a stretch is worse the more recently it was shown and the less it fits the voice
        fresh, stale = self._fresh(np.concatenate(([nxt if nxt >= 0 else i], to)))
        # a stretch longer than a jump's spacing, shown within recent_s, would replay a whole window
        trapped = (g.trap_after_landing[to] >= 0.8 * c.max_run_s * self.fps) & (stale[1:] > 0)
        a, b_ = g.j_start[i], g.j_start[i + 1]
        score = (c.cost_weight * cost + fresh[1:] + c.pool_weight * np.abs(g.speak_ahead[to] - want) + 10.0 * used
                 + 40.0 * trapped + c.pose_weight * g.j_pose[a:b_])
        edge = c.avoid_edits and nxt >= 0 and bool(g.hard[i] or g.edit_bound[nxt])
        if c.avoid_edits:  # a landing that would be forced on before its first chance to choose
            score = score + 40.0 * (g.edit_room[to] < g.fade + c.min_run_s * self.fps)
        if edge:  # leaving before an edit: not back onto the stretch that leads to it again
            score = score + 40.0 * (g.edit_at[to] == g.edit_at[i])
        stay = np.inf if nxt < 0 else float(fresh[0] + c.pool_weight * abs(g.speak_ahead[nxt] - want))
        best_score = float(score.min())
        jump = nxt < 0
        if not jump and self.run >= c.min_run_s * self.fps:
            p = 1.0 / max(1.0, (c.run_s - c.min_run_s) * self.fps)
            if self.run + 1 + g.free_run[nxt] >= c.max_run_s * self.fps:
                jump = True  # the last chance to jump before the run grows too long
            else:
                jump = self.rng.random() < p and best_score < stay + 3.0
        if not jump and best_score + 3.0 < stay:  # the voice changed pools, or this stretch was shown lately
            jump = self.rng.random() < c.pool_switch
        if not jump and self._W and self._repeats(nxt):  # playing on would replay a whole window: leave now
            jump = True
        if not jump and edge and best_score < stay + c.edit_cost:
            jump = True  # the last chance to leave before an edit of the footage, by a jump less visible than it
            self.edits_avoided += 1
        if not jump:
            return nxt, False
        rep = np.zeros(len(to), bool)
        if self._W:  # a target whose landing (and the fade after it) replays a window is the last resort
            n_fade = g.fade - 1 if g.fade > 0 and nxt >= 0 else 0
            rep = np.array([self._repeats_path(int(j), n_fade if f else 0) for j, f in zip(to, fade)])
            if rep.all():
                if nxt >= 0 and not self._repeats(nxt):
                    return nxt, False
                route = self._route_out(i)
                if len(route):  # a trap: every way on replays a window; take the shortest way to unseen footage
                    self.escapes += 1
                    self._route.extend(route)
                    return self._take_route(i, nxt, to, fade)
                rep[:] = False  # no way out is new: choose as if unguarded
            elif rep.any():
                self.avoided += 1
        cand = np.flatnonzero(~rep)
        # every way out shown lately: a loop of few stretches; leave it by any of them, at random
        k = len(cand) if float(score[cand].min()) >= c.escape else min(c.top, len(cand))
        best = cand[np.argsort(score[cand], kind="stable")[:k]]
        b = int(best[self.rng.integers(k)])
        return self._jump(i, int(to[b])), bool(fade[b])

    def _jump(self, i: int, j: int) -> int:
        self.edge_last[(i, j)] = self.t
        self._edge_order.append((self.t, (i, j)))
        self.run = 0
        self.jumped += 1
        return j

    # -- leaving a trap --------------------------------------------------------------------------
    def _take_route(self, i: int, nxt: int, to: np.ndarray, fade: np.ndarray) -> tuple[int, bool]:
        j = self._route.popleft()
        if j == nxt:
            return nxt, False
        return self._jump(i, j), bool(fade[int(np.flatnonzero(to == j)[0])])

    def _follow(self, x: int) -> None:
        """A tick played inside a cross-fade: consume the route if it agrees, drop it if the fade left it."""
        if self._route:
            if self._route[0] == x:
                self._route.popleft()
            else:
                self._route.clear()

    def _landing(self) -> np.ndarray:
        """(n,) where a cross-faded jump onto each frame next lets the walk choose: fade - 1 frames on."""
        if not hasattr(self, "_land"):
            land = np.arange(self.g.n)
            for _ in range(max(self.g.fade - 1, 0)):
                nx = self.g.next[land]
                land = np.where(nx >= 0, nx, land)  # a stretch ending inside the fade is left at its end
            self._land = land
        return self._land

    def _route_out(self, i: int) -> list[int]:
        """The shortest way on from i (playing on or jumping) to the least recently shown frame it can reach
        (the nearest such, among frames never shown or shown equally long ago), as the frames to show; []
        when i reaches nothing older than itself. A region whose only way out is a few frames behind where
        the walk stands is a trap staleness cannot see: every way on from inside it looks equally stale.
        A cross-faded jump plays fade - 1 frames on before the next choice, and the route says so.
        Breadth-first over the whole graph, vectorised by frontier; taken only when trapped."""
        g = self.g
        land = self._landing()
        parent = np.full(g.n, -2, np.int64)
        via = np.full(g.n, -1, np.int64)  # the jump target a fade landing was reached by
        parent[i] = -1
        frontier = np.array([i], np.int64)
        best, best_last = -1, int(self.last[i])
        while len(frontier):
            cnt = g.j_start[frontier + 1] - g.j_start[frontier]
            tot = int(cnt.sum())
            off = np.repeat(g.j_start[frontier] - (np.cumsum(cnt) - cnt), cnt) + np.arange(tot)
            nx = g.next[frontier]
            m = nx >= 0
            src_j = np.repeat(frontier, cnt)
            tgt = g.j_to[off]
            faded = g.j_fade[off] & (g.fade > 1) & (g.next[src_j] >= 0)
            src = np.concatenate([frontier[m], src_j])
            dst = np.concatenate([nx[m], np.where(faded, land[tgt], tgt)])  # playing on first: preferred
            jt = np.concatenate([np.full(int(m.sum()), -1, np.int64), np.where(faded, tgt, -1)])
            new = parent[dst] == -2
            dst, first = np.unique(dst[new], return_index=True)
            parent[dst] = src[new][first]
            via[dst] = jt[new][first]
            if len(dst):
                k = int(np.argmin(self.last[dst]))
                if self.last[dst[k]] < best_last:  # strictly older: nearer frames win ties
                    best, best_last = int(dst[k]), int(self.last[dst[k]])
            frontier = dst
        if best < 0:
            return []
        path, x = [], best
        while x != i:
            if via[x] >= 0:  # the fade's frames, from the jump target on to x
                seg, y = [], int(via[x])
                while y != x:
                    seg.append(y)
                    y = int(g.next[y])
                path.extend([x] + seg[::-1])
            else:
                path.append(x)
            x = int(parent[x])
        return path[::-1]


class BodyVideo:
    """Random access to body.mp4's frames (frame k at k / fps): sequential reads are cheap, a jump seeks."""

    def __init__(self, path: str, fps: float, size: tuple[int, int]):
        import av

        self.c = av.open(str(path))
        self.vs = self.c.streams.video[0]
        self.vs.thread_type = "SLICE"
        self.tb = self.vs.time_base
        self.fps = fps
        self.w, self.h = size
        self.pos = -1
        self._it = None
        self.seeks = 0

    def _index(self, fr) -> int:
        return int(round(float(fr.pts * self.tb) * self.fps))

    def _frames(self):
        for packet in self.c.demux(self.vs):
            for fr in packet.decode():
                yield fr

    def read(self, k: int) -> np.ndarray:
        if self._it is None or not (self.pos < k <= self.pos + 24):
            self.c.seek(int(k / self.fps / self.tb), stream=self.vs, backward=True, any_frame=False)
            self._it = self._frames()
            self.seeks += 1
        for fr in self._it:
            i = self._index(fr)
            self.pos = i
            if i == k:
                return fr.to_ndarray(format="bgr24")[: self.h, : self.w]
            if i > k:
                break
        self._it = None  # past it, or the file ended: seek exactly next time
        self.pos = -1
        self.c.seek(int(k / self.fps / self.tb), stream=self.vs, backward=True, any_frame=False)
        self._it = self._frames()
        for fr in self._it:
            i = self._index(fr)
            self.pos = i
            if i >= k:
                return fr.to_ndarray(format="bgr24")[: self.h, : self.w]
        raise IndexError(f"body frame {k} is not in the body video; the package is damaged: re-run 'hygie enroll'")

    def close(self) -> None:
        self.c.close()


class BodyPlayer:
    """Output-size body frames by tick (the renderer's `loop` when the package holds a body).

    `frame(tick)` is read-only: copy before drawing. Ticks run forward; `reset()` starts the walk
    again (same seed: the same frames for the same voice)."""

    def __init__(self, avatar, tf, ahead: int = 12, cfg: WalkerConfig | None = None, threaded: bool = True,
                 ready: int = 2):
        self.arrays = avatar.arrays("body.npz")
        self.graph = BodyGraph(self.arrays)
        self.n = self.graph.n
        self.tf = tf
        self.fps = avatar.fps
        self.walker = BodyWalker(self.graph, self.fps, cfg)
        self._path = str(avatar.file("body.mp4"))
        self._size = avatar.frame_size
        self._video = BodyVideo(self._path, self.fps, self._size)  # the stretch being shown
        self._video_fade = BodyVideo(self._path, self.fps, self._size)  # the stretch fading out (cross-fades)
        self._ahead = ahead
        self._ready_n = max(0, min(ready, ahead))  # output frames made ahead (each one frame of memory)
        self._ready: dict[int, np.ndarray] = {}  # tick -> its output frame, the caller's to draw into
        self._gen = 0  # bumped by reset(): a frame made for the old walk is dropped
        self.taken_ready = 0  # take() calls served by a frame made ahead (the rest made on the frame path)
        self._plan: list[Shot] = []  # what tick _base + k shows
        self._base = 0
        self._voice = False
        self._activity: np.ndarray | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._want = 0  # the tick being shown
        self._stop = False
        self.misses = 0  # frames the path waited for (decode-ahead fell behind)
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=_decode_loop, args=(weakref.ref(self),), name="hygie-body",
                                            daemon=True)
            self._thread.start()
            _live.add(self)

    # -- voice -----------------------------------------------------------------------------------
    def set_voice(self, voice: bool) -> None:
        """Live: voice now (planned ticks take it from here)."""
        self._voice = bool(voice)

    def set_activity(self, activity: np.ndarray | None) -> None:
        """Offline: voice per tick, known in advance (the walk follows it exactly)."""
        self._activity = None if activity is None else np.asarray(activity, bool)

    def _voice_at(self, tick: int) -> bool:
        a = self._activity
        if a is not None and len(a):
            return bool(a[min(tick, len(a) - 1)])
        return self._voice

    # -- the walk --------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.walker.reset()
            self._plan, self._base = [], 0
            self._want = 0
            self._ready.clear()
            self._gen += 1
            self._cond.notify_all()

    def _extend(self, tick: int) -> None:
        """Plan the walk up to `tick` (lock held)."""
        while self._base + len(self._plan) <= tick:
            self._plan.append(self.walker.step(self._voice_at(self._base + len(self._plan))))
        if len(self._plan) > 8192:  # keep the recent past only (ticks run forward)
            drop = len(self._plan) - 2048
            self._plan = self._plan[drop:]
            self._base += drop

    def _at(self, tick: int) -> Shot:
        if tick < self._base:
            return self._plan[0]
        self._extend(tick)
        return self._plan[tick - self._base]

    def index(self, tick: int) -> int:
        """The body frame whose geometry the mouth is pasted with at this tick."""
        with self._lock:
            return self._at(int(tick)).node

    def shot(self, tick: int) -> Shot:
        with self._lock:
            return self._at(int(tick))

    def native(self, i: int) -> np.ndarray:
        """Body frame i at the video's own size (decoded now: for set-up code, not the frame path)."""
        v = BodyVideo(self._path, self.fps, self._size)
        try:
            return v.read(int(i))
        finally:
            v.close()

    def take(self, tick: int) -> np.ndarray:
        """The output frame of this tick as a new array the caller owns (draws into): made ahead on the
        decode thread when it could, else here. The same bytes as `frame(tick).copy()`."""
        tick = int(tick)
        with self._lock:
            img = self._ready.pop(tick, None)
            for t in [t for t in self._ready if t < tick]:  # skipped ticks (a late camera clock)
                del self._ready[t]
        if img is not None:
            with self._lock:
                self._want = tick  # what frame() would have recorded: the thread works on from here
                self._extend(tick + self._ahead)
                self._cond.notify_all()
            self.taken_ready += 1
            return img
        sh, img, old = self._fetch(tick)
        return self._compose(sh, img, old, own=False)

    def frame(self, tick: int) -> np.ndarray:
        """The output frame of this tick, read-only (copy before drawing)."""
        sh, img, old = self._fetch(int(tick))
        return self._compose(sh, img, old, own=True)

    @staticmethod
    def _compose(sh: Shot, img: np.ndarray, old: np.ndarray | None, own: bool) -> np.ndarray:
        """The tick's picture from its decoded frames: the cross-fade's blend (a new array), or the frame
        itself (`own`: may be the cache's, read-only) or a copy of it."""
        import cv2

        if sh.fade >= 0:
            return cv2.addWeighted(img, 1.0 - sh.w, old, sh.w, 0.0)
        return img if own else img.copy()

    def _fetch(self, tick: int) -> tuple[Shot, np.ndarray, np.ndarray | None]:
        """The shot of a tick and its decoded frame(s), waiting for (or doing) the decode."""
        with self._lock:
            sh = self._at(tick)
            self._want = tick
            self._extend(tick + self._ahead)
            self._cond.notify_all()
            img, old = self._cache.get(sh.node), (self._cache.get(sh.fade) if sh.fade >= 0 else None)
            if (img is None or (sh.fade >= 0 and old is None)) and self._thread is not None:
                self.misses += 1
                while (img is None or (sh.fade >= 0 and old is None)) and not self._stop and self._thread.is_alive():
                    self._cond.wait(0.5)
                    img, old = self._cache.get(sh.node), (self._cache.get(sh.fade) if sh.fade >= 0 else None)
        if img is None:  # no thread (or it stopped): decode here
            img = self._decode(sh.node, self._video)
            with self._lock:
                self._put(sh.node, img)
        if sh.fade >= 0 and old is None:
            old = self._decode(sh.fade, self._video_fade)
            with self._lock:
                self._put(sh.fade, old)
        return sh, img, old

    def _decode(self, i: int, video: "BodyVideo") -> np.ndarray:
        return np.ascontiguousarray(self.tf.image(video.read(i)))

    def _put(self, i: int, img: np.ndarray) -> None:
        self._cache[i] = img
        self._cache.move_to_end(i)
        while len(self._cache) > self._keep(img.nbytes):
            self._cache.popitem(last=False)

    def _keep(self, frame_bytes: int) -> int:
        """Decoded output frames kept: the decode-ahead window (every tick's frame and its fade's, plus a
        few) always; beyond it, for frames the walk comes back to, up to CACHE_BUDGET_BYTES. 56 frames
        of a 1080p output were 348 MB (agent RSS 571 MB)."""
        window = 2 * (self._ahead + 1) + 4
        return max(window, min(4 * self._ahead + 8, CACHE_BUDGET_BYTES // max(frame_bytes, 1)))

    def _decode_step(self) -> bool:
        """One piece of work, nearest tick first: decode a frame the walk will show, or make the output
        frame of one of the next `ready` ticks. False when asked to stop."""
        with self._lock:
            if self._stop:
                return False
            todo, video, make = None, self._video, None
            for t in [t for t in self._ready if t <= self._want]:  # shown already (frame() callers never take)
                del self._ready[t]
            for t in range(self._want, self._want + self._ahead + 1):
                if t < self._base:
                    continue
                if t - self._base >= len(self._plan):
                    break
                sh = self._plan[t - self._base]
                if sh.node not in self._cache:
                    todo = sh.node
                    break
                if sh.fade >= 0 and sh.fade not in self._cache:
                    todo, video = sh.fade, self._video_fade
                    break
                if self._want < t <= self._want + self._ready_n and t not in self._ready:
                    make = (t, sh, self._cache[sh.node], self._cache.get(sh.fade) if sh.fade >= 0 else None,
                            self._gen)
                    break
            if todo is None and make is None:
                self._cond.wait(0.2)
                return not self._stop
        if make is not None:
            t, sh, img, old, gen = make
            out = self._compose(sh, img, old, own=False)  # outside the lock: the frame path goes on
            with self._lock:
                if gen == self._gen and t > self._want and not self._stop:
                    self._ready[t] = out
            return True
        img = self._decode(todo, video)
        with self._lock:
            self._put(todo, img)
            self._cond.notify_all()
        return True

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._ready.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        _live.discard(self)
        for v in (self._video, self._video_fade):
            try:
                v.close()
            except Exception:  # already closed
                pass


_live: "weakref.WeakSet[BodyPlayer]" = weakref.WeakSet()


def _decode_loop(ref: "weakref.ref[BodyPlayer]") -> None:
    while True:
        p = ref()
        if p is None:
            return
        try:
            if not p._decode_step():
                return
        except Exception:  # a damaged video: the frame path decodes (and reports) itself
            log.exception("body decode-ahead stopped")
            return
        del p


@atexit.register
def _stop_all() -> None:
    for p in list(_live):
        p.close()


def walk(arrays: dict[str, np.ndarray], fps: float, voice: np.ndarray,
         cfg: WalkerConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a render with this voice activity (one bool per tick) shows, without any video:
    (node, fade, w) per tick (fade -1 outside cross-fades)."""
    w = BodyWalker(BodyGraph(arrays), fps, cfg)
    shots = [w.step(bool(v)) for v in voice]
    return (np.array([s.node for s in shots], np.int64), np.array([s.fade for s in shots], np.int64),
            np.array([s.w for s in shots], np.float32))
