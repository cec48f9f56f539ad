"""Lip evaluation metrics, baselines, and a short real training run on the GRID enrollment."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from hygie.core.errors import HygieError
from hygie.models.evaluate import Truth, best_lag, metrics, pearson, EvalConfig


def test_pearson_and_lag_sign():
    rng = np.random.default_rng(0)
    true = np.convolve(rng.standard_normal(400), np.ones(5) / 5, "same")
    late = np.roll(true, 3)  # prediction 3 frames late: pred[t] = true[t-3]
    lag, r = best_lag(late, true, 10)
    assert lag == 3 and r > 0.99
    assert best_lag(np.roll(true, -2), true, 10)[0] == -2
    assert pearson(true, true) == pytest.approx(1.0)


def test_metrics_on_synthetic_lips():
    rng = np.random.default_rng(1)
    n = 200
    lips = rng.normal(0, 0.01, size=(n, 40, 2))
    truth = Truth(np.arange(n) / 25, lips, np.ones(n, bool))
    m = metrics(lips.copy(), truth, np.zeros(n, bool), 0.05, EvalConfig())
    assert m["lmd"] == pytest.approx(0.0) and m["opening_r"] == pytest.approx(1.0) and m["lag"] == 0

def _speaking_lips(n: int = 300, seed: int = 2):
    """Synthetic lips whose inner gap opens and closes smoothly (a talking mouth), with a random shape mode."""
    from hygie.core.face import geometry as G

    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.05, size=(40, 2))
    open_ = np.convolve(np.abs(rng.standard_normal(n + 20)), np.ones(7) / 7, "same")[10:-10] * 0.05
    lips = np.repeat(base[None], n, 0)
    lips[:, G.LIP_POS[G.LOWER_INNER], 1] += open_
    lips[:, G.LIP_POS[G.UPPER_INNER], 1] -= 0.2 * open_
    lips += rng.normal(0, 0.001, size=lips.shape)
    return lips


def test_metrics_on_known_wrong_predictions():
    """A late, a shrunken and a frozen mouth give the LMD, r and lag they must."""
    lips = _speaking_lips()
    n = len(lips)
    truth = Truth(np.arange(n) / 25, lips, np.ones(n, bool))
    quiet = np.zeros(n, bool)
    late = np.roll(lips, 2, axis=0)  # the prediction shows each mouth 2 frames late
    m = metrics(late, truth, quiet, 0.05, EvalConfig())
    assert m["lag"] == 2 and m["r_at_lag"] > 0.99 and m["opening_r"] < m["r_at_lag"]
    mean = lips.mean(0)
    half = mean + 0.5 * (lips - mean)  # half the movement: LMD is half the distance to the mean mouth
    m = metrics(half, truth, quiet, 0.05, EvalConfig())
    expect = 0.5 * np.linalg.norm(lips - mean, axis=-1).mean()
    assert m["lmd"] == pytest.approx(expect, rel=1e-6) and m["opening_r"] > 0.95 and m["lag"] == 0
    frozen = np.repeat(mean[None], n, 0)  # a constant mouth: a distance, but no correlation and no lag
    m = metrics(frozen, truth, quiet, 0.05, EvalConfig())
    assert m["lmd"] == pytest.approx(np.linalg.norm(lips - mean, axis=-1).mean(), rel=1e-6)
    assert m["lag"] is None and not np.isfinite(m["opening_r"] if m["opening_r"] is not None else np.nan)


def test_silent_frames_are_pauses_not_gaps_between_words():
    """Quiet = near the noise floor; silent = quiet with no speech within 100 ms either side."""
    from hygie.core.audio.mel import LogMel, MelConfig
    from hygie.models.evaluate import silence_mask

    sr = 16000
    rng = np.random.default_rng(3)
    a = 1e-4 * rng.standard_normal(3 * sr)
    for t0, t1 in ((1.0, 1.5), (1.6, 1.8)):  # two "words" 100 ms apart (a stop closure), then a pause
        a[int(t0 * sr):int(t1 * sr)] += 0.3 * rng.standard_normal(int(t1 * sr) - int(t0 * sr))
    cfg = MelConfig()
    mel = LogMel(cfg)(a.astype(np.float32))
    times = np.arange(0, 2.98, 0.01)
    silent, quiet, _ = silence_mask(mel, times, cfg, EvalConfig())
    assert not np.any(silent & ~quiet)
    gap = (times > 1.535) & (times < 1.565)
    assert quiet[gap].all() and not silent[gap].any()  # the gap is quiet but not a pause
    assert silent[(times > 0.15) & (times < 0.85)].all() and silent[(times > 1.95) & (times < 2.85)].all()
    assert not silent[(times > 0.92) & (times < 1.88)].any()


def test_baselines_and_closed_range(grid_avatar):
    from hygie.core.package.avatar import load_package
    from hygie.models.baselines import NAMES, Baselines
    from hygie.models.evaluate import closed_threshold

    av = load_package(grid_avatar)
    b = Baselines.fit(av)
    mel = av.features["mel"][:3000]
    t = av.track["times"][:700]
    for name in NAMES:
        c = b.predict(name, mel, t)
        assert c.shape == (700, av.track["coeffs"].shape[1]) and np.all(np.isfinite(c))
    thr = closed_threshold(av, EvalConfig())
    assert 0 < thr < np.nanpercentile(av.track["opening"], 90)


def test_package_without_features_is_refused(grid_avatar_copy):
    torch = pytest.importorskip("torch", reason="needs the 'train' extra")  # noqa: F841
    from hygie.core.package.avatar import load_package
    from hygie.core.package.writer import update_package
    from hygie.models.dataset import build_dataset

    (grid_avatar_copy / "features.npz").unlink()
    update_package(grid_avatar_copy)
    with pytest.raises(HygieError, match="features"):
        build_dataset(load_package(grid_avatar_copy))


def test_short_real_training_beats_mean_mouth(grid_avatar, tmp_path):
    """Train briefly on the first 100 s of the GRID enrollment; validation (last 10 s) beats the mean mouth."""
    pytest.importorskip("torch", reason="needs the 'train' extra")
    from hygie.core.lips.model import LipModel
    from hygie.core.package.avatar import load_package
    from hygie.core.package.writer import update_package
    from hygie.models.train import TrainConfig, train_package

    pkg = tmp_path / "avatar"
    shutil.copytree(grid_avatar, pkg, ignore=shutil.ignore_patterns("mouths.npz", "template.npz", "report.html"))
    for name in ("mouths.npz", "template.npz"):  # large and not needed for training: link them
        (pkg / name).symlink_to(grid_avatar / name)
    for p in pkg.iterdir():
        if not p.is_symlink():
            p.chmod(0o644)
    update_package(pkg)  # the report is left out: list (and self-digest) what the copy holds
    cfg = TrainConfig(steps=150, batch=12, chunk=150, eval_every=50, max_seconds=100, progress=False)
    res = train_package(pkg, seed=0, config=cfg)
    assert res["val_loss"] < 0.8 * res["mean_mouth_val_loss"], res
    assert res["onnx_parity"]["torch_vs_onnx"] <= 1e-4
    av = load_package(pkg)  # hashes refreshed
    assert av.has_lip_model and "lip_model" in av.meta
    lip = LipModel(av)
    out = lip.predict(av.features["mel"][:500])
    assert out.shape == (500, av.track["coeffs"].shape[1]) and np.all(np.isfinite(out))


def test_eval_and_runtime_import_without_torch():
    """`hygie eval` and the runtime wrapper must work in an install without the 'train' extra."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from hygie.models import evaluate, baselines\n"
            "from hygie.core.cli import eval\n"
            "from hygie.core.bench import lips\n"
            "from hygie.core.lips import model\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
