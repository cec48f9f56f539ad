import numpy as np

from hygie.core.face import geometry as G


def random_rotation(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_umeyama_recovers_known_similarity():
    rng = np.random.default_rng(1)
    src = rng.standard_normal((7, 3))
    R, s, t = random_rotation(rng), 2.5, np.array([3.0, -1.0, 0.5])
    dst = s * src @ R.T + t
    sim = G.umeyama(src, dst)
    assert abs(sim.s - s) < 1e-9
    assert np.allclose(sim.R, R, atol=1e-9)
    assert np.allclose(sim.t, t, atol=1e-9)
    assert np.allclose(sim.inverse_apply(sim.apply(src)), src, atol=1e-9)
    assert np.allclose(G.Similarity.from_array(sim.to_array()).apply(src), dst, atol=1e-9)


def test_umeyama_never_reflects():
    rng = np.random.default_rng(2)
    src = rng.standard_normal((10, 3))
    dst = src * np.array([1, 1, -1])  # a mirror: best proper rotation, no reflection
    assert np.linalg.det(G.umeyama(src, dst).R) > 0


def test_alignment_removes_pose_and_scale():
    rng = np.random.default_rng(3)
    face = rng.standard_normal((478, 3)) * 40 + 200
    ref = G.fit_reference(face[None])
    R, s, t = random_rotation(rng), 0.7, np.array([10.0, 20.0, 5.0])
    moved = s * face @ R.T + t
    sim_a, res_a = G.align(face, ref)
    sim_b, res_b = G.align(moved, ref)
    assert res_a < 1e-9 and res_b < 1e-9
    assert np.allclose(sim_a.apply(face), sim_b.apply(moved), atol=1e-9)
    iod = np.linalg.norm(sim_a.apply(face)[33] - sim_a.apply(face)[263])
    assert abs(iod - 1.0) < 1e-9  # canonical unit = inter-ocular distance


def test_similarity_2d_is_exact_for_a_similarity():
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 100, (20, 2))
    a = 0.3
    M = np.array([[1.5 * np.cos(a), -1.5 * np.sin(a), 7], [1.5 * np.sin(a), 1.5 * np.cos(a), -3]])
    q = p @ M[:, :2].T + M[:, 2]
    assert np.allclose(G.similarity_2d(p, q), M, atol=1e-9)


def test_mouth_opening_uses_inner_lip_midpoints():
    lips = np.zeros((40, 2))
    lips[G.LIP_POS[13]] = [0, 0.30]
    lips[G.LIP_POS[14]] = [0, 0.42]
    assert abs(G.mouth_opening(lips) - 0.12) < 1e-12


def test_implausible_fits_flags_only_far_outliers():
    rng = np.random.default_rng(5)
    r = 0.006 + 0.001 * rng.standard_normal(500)
    r[[10, 20]] = [0.02, 0.05]
    r[30] = np.nan
    flagged = G.implausible_fits(r)
    assert set(np.flatnonzero(flagged)) == {10, 20}
