"""Candidate choice: shape distance + continuity + hysteresis; a constant input never flickers."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss")

from hygie.core.render.retrieval import MouthRetriever, RetrievalConfig


def _db(n: int = 600, k: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    # a smooth "video" of mouth shapes: consecutive frames are close, like real footage
    walk = np.cumsum(rng.normal(0, 0.01, (n, k)), axis=0).astype(np.float32)
    return walk, np.arange(n)


def test_nearest_is_exact_without_history():
    db, frames = _db()
    r = MouthRetriever(db, frames)
    for j in (0, 77, 599):
        assert r.choose(db[j]) == j
        r.reset()


def test_constant_input_never_flickers():
    db, frames = _db()
    r = MouthRetriever(db, frames)
    q = db[123] + 0.004
    picks = [r.choose(q) for _ in range(200)]
    assert len(set(picks[3:])) == 1, picks[:10]


def test_noisy_constant_input_does_not_alternate():
    db, frames = _db()
    rng = np.random.default_rng(3)
    r = MouthRetriever(db, frames)
    q = db[300] + 0.002
    picks = [r.choose(q + rng.normal(0, 0.002, q.shape).astype(np.float32)) for _ in range(300)]
    switches = int(np.sum(np.diff(picks) != 0))
    assert switches <= 3, switches


def test_following_the_source_video_is_preferred_over_a_jump():
    db, frames = _db()
    r = MouthRetriever(db, frames, cfg=RetrievalConfig(jump=0.01, stay=0.002))
    picks = [r.choose(db[i]) for i in range(100, 160)]
    # playing the database's own sequence back: every step follows the source frame order
    assert np.all(np.diff(picks) == 1)


def test_a_clearly_better_match_wins_over_continuity():
    db, frames = _db()
    r = MouthRetriever(db, frames, cfg=RetrievalConfig(jump=0.004))
    r.choose(db[10])
    far = int(np.argmax(np.linalg.norm(db - db[10], axis=1)))
    assert r.choose(db[far]) == far


def test_a_jump_prefers_a_mouth_that_looks_alike():
    # entries 0 (current), 1 and 2 unrelated frames with the same shape distance from the request;
    # 2 looks like the current mouth, 1 does not
    db = np.array([[0.0, -1.0], [0.05, 0.0], [-0.05, 0.0]], np.float32)
    thumbs = np.array([[0.1, -0.1], [-0.2, 0.2], [0.1, -0.1]], np.float32)
    r = MouthRetriever(db, np.array([0, 100, 200]), n_points=1,
                       cfg=RetrievalConfig(jump=0.001, look=0.5, stay=0.0), thumbs=thumbs)
    assert r.choose(db[0]) == 0
    assert r.choose(np.array([0.0, 0.0], np.float32)) == 2  # same distance to 1 and 2; 2 looks alike


def test_source_conditions_break_a_shape_tie():
    """Two equally close shapes: the one filmed like the template frame (head turn, light, size) wins."""
    from hygie.core.render.conditions import Conditions, SourceCost

    db = np.array([[0.05, 0.0], [-0.05, 0.0]], np.float32)
    fwd = np.array([[0, 0, 1], [np.sin(0.3), 0, np.cos(0.3)]], np.float32)  # entry 1: turned 17 degrees
    mouths = Conditions(fwd, np.array([150.0, 150.0], np.float32), np.array([[55, 20, 20], [55, 20, 20]], np.float32))
    tpl = Conditions(np.array([[np.sin(0.3), 0, np.cos(0.3)]], np.float32), np.array([150.0], np.float32),
                     np.array([[55, 20, 20]], np.float32))
    cost = SourceCost(mouths, tpl, pose=0.05, light=0.0005, scale=0.01)
    q = np.array([0.0, 0.0], np.float32)
    r = MouthRetriever(db, np.array([0, 100]), n_points=1, cfg=RetrievalConfig(look=0))
    assert r.choose(q, cost.for_template(0)) == 1
    # the template turns back to frontal: now entry 0 suits it
    tpl.forward[0] = [0, 0, 1]
    r.reset()
    assert r.choose(q, cost.for_template(0)) == 0
    # light: a crop from darker footage (ΔE 20) loses a tie; a smaller source face (upscaling) too
    mouths.forward[:] = [0, 0, 1]
    mouths.lab[0] = [35, 20, 20]
    r.reset()
    assert r.choose(q, SourceCost(mouths, tpl, 0.05, 0.0005, 0.01).for_template(0)) == 1
    mouths.lab[0] = [55, 20, 20]
    mouths.iod[1] = 75.0
    r.reset()
    assert r.choose(q, SourceCost(mouths, tpl, 0.05, 0.0005, 0.01).for_template(0)) == 0


def test_renderer_does_not_stretch_a_closed_mouth_open(grid_avatar):
    """A wide-open request: the open-deficit cost picks a crop that was open, not a closed one pulled apart."""
    from hygie.core.package.avatar import load_package
    from hygie.core.render.renderer import Renderer, RendererConfig

    av = load_package(grid_avatar)
    op = av.mouths["opening"]
    wide = av.track["lips"][av.mouths["frame"][int(np.argsort(op)[-5])]].copy()
    # open it further than any real mouth: lower lip (inner and outer) 40 % further down
    lower = wide[:, 1] > wide[[35, 15], 1].mean()  # below the upper lip's middle (inner 13, outer 0)
    wide[lower, 1] += 0.4 * float(op.max())
    got = {}
    for w in (0.0, 0.3):
        r = Renderer(av, cfg=RendererConfig(retrieval=RetrievalConfig(open_deficit=w)))
        try:
            r.render_lips(wide, 0)
            got[w] = float(op[r.last["mouth"]])
        finally:
            r.close()
    want = float(np.linalg.norm(wide[25] - wide[35]))  # inner lips 13-14: LIP_POS 35 (13), 25 (14)
    assert got[0.3] >= got[0.0] - 1e-6
    assert got[0.3] >= 0.8 * want
