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
