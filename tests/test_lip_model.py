"""Lip model: network shapes and state, streaming == offline, ONNX parity, runtime wrapper, bad input."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from hygie.core.errors import HygieError
from hygie.core.lips.model import LipModel, MelNormaliser, NormConfig, coeffs_at_times
from hygie.core.audio.mel import MelConfig

torch = pytest.importorskip("torch", reason="the lip-model training tests need the 'train' extra (torch)")

from hygie.models.dataset import LipData, VideoData, fit_norm  # noqa: E402
from hygie.models.export import export_onnx, parity  # noqa: E402
from hygie.models.lipnet import LipNet, LipNetConfig  # noqa: E402

K = 5


@dataclass
class FakeAvatar:
    """Just what LipModel reads from a package (mel parameters); the model comes from model_dir."""

    path: Path
    mel_config: MelConfig
    has_lip_model: bool = True


def _mel(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(-8, 1, size=(n, 80))
    speech = (np.sin(np.arange(n) / 15.0) > 0)[:, None] * rng.normal(4, 1, size=(n, 80))
    return (base + speech).astype(np.float32)


def _data(lookahead: int = 8) -> LipData:
    cfg = MelConfig()
    mel = _mel(600)
    v = VideoData(mel, np.zeros((600, K), np.float32), np.ones(600, bool), 540)
    data = LipData([v], cfg, K, np.full(K, 0.1, np.float32), np.zeros(K, np.float32), np.zeros((K + 1, 2), np.float32))
    data.norm = fit_norm([mel[:540]], cfg.frame_rate)
    return data


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[LipNet, Path, LipData]:
    torch.manual_seed(0)
    data = _data()
    net = LipNet(LipNetConfig(n_out=K, conv_channels=32, hidden=32, lookahead=8),
                 torch.full((K,), 0.1), torch.zeros(K)).eval()
    out = tmp_path_factory.mktemp("lips")
    export_onnx(net, data, out)
    return net, out, data


def test_shapes_and_state_round_trip():
    net = LipNet(LipNetConfig(n_out=K, conv_channels=16, hidden=24, gru_layers=2, conv_kernels=(3, 5))).eval()
    x = torch.randn(2, 37, 80)
    out, *state = net(x, *net.initial_state(2))
    assert out.shape == (2, 37, K)
    assert [tuple(s.shape) for s in state] == net.state_shapes(2)
    # feeding in pieces with the state carried gives the same numbers as one call
    st = net.initial_state(2)
    parts = []
    with torch.no_grad():
        for a, b in ((0, 1), (1, 10), (10, 11), (11, 37)):
            o, *st = net(x[:, a:b], *st)
            parts.append(o)
        assert torch.allclose(torch.cat(parts, 1), net(x, *net.initial_state(2))[0], atol=1e-5)


def test_kernel_one_refused():
    with pytest.raises(ValueError):
        LipNet(LipNetConfig(conv_kernels=(1, 3)))


def test_onnx_parity_and_description(exported):
    net, out, _ = exported
    par = parity(net, out / "lips.onnx", np.random.default_rng(1).standard_normal((150, 80)).astype(np.float32), chunk=1)
    assert par["torch_vs_onnx"] <= 1e-4
    assert par["stream_vs_offline"] <= 1e-4
    import json

    desc = json.loads((out / "lips.onnx.json").read_text())
    assert desc["lookahead_frames"] == 8 and desc["n_components"] == K
    assert desc["mel"]["n_mels"] == 80 and len(desc["normalisation"]["mean"]) == 80
    assert [s["shape"] for s in desc["states"]] == [list(s) for s in net.state_shapes(1)]
    assert (out / "lips.onnx").stat().st_size < 2_000_000


def test_runtime_streaming_equals_offline(exported):
    _, out, _ = exported
    lip = LipModel(FakeAvatar(out, MelConfig()), threads=1, model_dir=out)
    assert lip.lookahead_s == pytest.approx(0.08)
    mel = _mel(300, seed=3)
    off = lip.predict(mel)
    assert off.shape == (300, K)
    assert np.abs(lip.predict(mel, chunk=3) - off).max() <= 1e-4
    lip.reset()
    one = np.concatenate([lip.push(mel[i:i + 1]) for i in range(len(mel))])
    assert one.shape == (300, K)
    # push row j answers for frame j - lookahead
    assert np.abs(one[8:] - off[:-8]).max() <= 1e-4
    lip.reset()
    again = np.concatenate([lip.push(mel[i:i + 5]) for i in range(0, len(mel), 5)])
    assert np.abs(again - one).max() <= 1e-4  # reset() really starts over


def test_runtime_matches_torch_with_normalisation(exported):
    net, out, data = exported
    lip = LipModel(FakeAvatar(out, MelConfig()), threads=1, model_dir=out)
    mel = _mel(120, seed=4)
    z = MelNormaliser(data.norm)(mel)
    with torch.no_grad():
        ref = net(torch.from_numpy(z)[None], *net.initial_state())[0][0].numpy()
    lip.reset()
    assert np.abs(lip.push(mel) - ref).max() <= 1e-4


def test_normaliser_chunking_invariant():
    cfg = fit_norm([_mel(500)], 100.0)
    a = MelNormaliser(cfg)(_mel(200, 5))
    n = MelNormaliser(cfg)
    b = np.concatenate([n(_mel(200, 5)[i:i + 7]) for i in range(0, 200, 7)])
    assert np.abs(a - b).max() < 1e-6
    # a gain change is absorbed by the floor once it has adapted
    n2 = MelNormaliser(cfg)
    loud = _mel(3000, 6)
    za = MelNormaliser(cfg)(loud)[-500:]
    zb = n2(loud + 2.0)[-500:]
    assert np.abs(za - zb).mean() < 0.1


def test_coeffs_at_times():
    c = np.stack([np.arange(100.0)] * K, 1).astype(np.float32)
    cfg = MelConfig()
    t = np.array([cfg.frame_time(10), (cfg.frame_time(20) + cfg.frame_time(21)) / 2])
    np.testing.assert_allclose(coeffs_at_times(c, t, cfg)[:, 0], [10, 20.5], atol=1e-4)


def test_bad_input_errors(exported):
    _, out, _ = exported
    lip = LipModel(FakeAvatar(out, MelConfig()), threads=1, model_dir=out)
    bad = _mel(10)
    bad[3, 7] = np.nan
    with pytest.raises(HygieError, match="NaN"):
        lip.push(bad)
    with pytest.raises(HygieError, match="shape"):
        lip.push(np.zeros((4, 40), np.float32))
    with pytest.raises(HygieError, match="mel parameters"):
        LipModel(FakeAvatar(out, MelConfig(n_mels=40)), model_dir=out)
    with pytest.raises(HygieError, match="mel parameters"):
        LipModel(FakeAvatar(out, MelConfig(hop_length=320)), model_dir=out)


def test_training_is_deterministic():
    from hygie.models.train import TrainConfig, train_model

    data = _data()
    rng = np.random.default_rng(7)
    data.videos[0].target[:] = rng.normal(0, 0.1, size=data.videos[0].target.shape).astype(np.float32)
    data.opening_basis = rng.normal(0, 1, size=(K + 1, 2)).astype(np.float32)
    cfg = TrainConfig(steps=6, batch=4, chunk=100, eval_every=3, progress=False,
                      net=LipNetConfig(conv_channels=16, hidden=16))
    m1, h1 = train_model(data, cfg)
    m2, h2 = train_model(data, cfg)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert h1["history"] == h2["history"]


def test_ensemble_streams_and_exports(tmp_path):
    from hygie.models.lipnet import LipEnsemble

    torch.manual_seed(1)
    cfg = LipNetConfig(n_out=K, conv_channels=16, hidden=16, lookahead=4)
    ens = LipEnsemble([LipNet(cfg), LipNet(cfg)]).eval()
    assert len(ens.state_names()) == len(ens.state_shapes()) == 6
    export_onnx(ens, _data(), tmp_path)
    par = parity(ens, tmp_path / "lips.onnx", _mel(60, 2), chunk=1)
    assert max(par.values()) <= 1e-4


def test_calibration_restores_the_real_std_within_its_clip():
    """A prediction shrunk to 80 % of the real movement is scaled back (1.25 <= 1.3); one shrunk to 50 %
    only to the clip (1.3); the scales live in the output buffers, so the exported graph carries them."""
    from hygie.models.train import calibrate

    torch.manual_seed(3)
    net = LipNet(LipNetConfig(n_out=K, conv_channels=8, hidden=8, lookahead=0)).eval()
    x = torch.from_numpy(_mel(400))[None] / 10
    with torch.no_grad():
        p = net(x, *net.initial_state())[0][0].numpy()
    mu = p.mean(0)
    shrink = np.array([0.8, 0.5, 1.0, 1.2, 0.8], np.float32)
    y = (mu + (p - mu) / shrink).astype(np.float32)  # the real signal moves 1/shrink as much
    val = [(x[0].numpy(), y, np.ones(len(y), bool))]
    info = calibrate(net, val, (1.0, 1.3))
    assert np.allclose(info["scale"], [1.25, 1.3, 1.0, 1.0, 1.25], atol=1e-4)
    with torch.no_grad():
        q = net(x, *net.initial_state())[0][0].numpy()
    assert np.allclose(q.std(0) / y.std(0), [1.0, 0.65, 1.0, 1.2, 1.0], atol=1e-3)
    assert np.allclose(q.mean(0), mu, atol=1e-5)  # scaled about the validation mean


def test_output_smoothing_streams_and_exports(tmp_path):
    """The optional causal output smoothing keeps streaming == offline and ONNX == torch, frame by frame."""
    torch.manual_seed(2)
    net = LipNet(LipNetConfig(n_out=K, conv_channels=16, hidden=16, lookahead=4, smooth=0.5, smooth_taps=6)).eval()
    assert net.state_names()[-1] == "smooth_state" and net.state_shapes()[-1] == (1, K, 5)
    export_onnx(net, _data(), tmp_path)
    par = parity(net, tmp_path / "lips.onnx", _mel(60, 2), chunk=1)
    assert max(par.values()) <= 1e-4
    raw = LipNet(LipNetConfig(n_out=K, conv_channels=16, hidden=16, lookahead=4)).eval()
    raw.load_state_dict({k: v for k, v in net.state_dict().items() if k != "smooth_kernel"})
    x = torch.from_numpy(_mel(60, 3))[None] / 10
    with torch.no_grad():
        a = net(x, *net.initial_state())[0][0].numpy()
        b = raw(x, *raw.initial_state())[0][0].numpy()
    w = 0.5 ** np.arange(6)
    w /= w.sum()
    expect = sum(w[k] * np.concatenate([np.zeros((k, K)), b[:len(b) - k]]) for k in range(6))
    assert np.allclose(a, expect, atol=1e-5)
