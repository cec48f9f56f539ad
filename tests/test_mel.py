import numpy as np
import pytest

from hygie.core.audio.mel import LogMel, MelConfig, StreamingLogMel


def test_frame_count_and_times_for_a_known_duration():
    cfg = MelConfig()
    x = np.zeros(16000 * 3, np.float32)  # 3 s
    m = LogMel(cfg)(x)
    assert m.shape == (1 + (48000 - 400) // 160, 80) == (298, 80)
    assert cfg.frame_time(0) == pytest.approx(0.0125)
    assert cfg.frame_time(297) == pytest.approx(2.9825)
    # a video frame at 1.0 s maps to the mel frame centred there
    assert cfg.frame_time(int(cfg.frame_at(1.0))) == pytest.approx(1.0, abs=0.005)


def test_tone_lands_in_the_right_band_at_the_right_time():
    cfg = MelConfig()
    sr = cfg.sample_rate
    x = np.zeros(sr * 2, np.float32)
    t = np.arange(sr // 2) / sr
    x[sr: sr + sr // 2] = 0.5 * np.sin(2 * np.pi * 1000 * t)  # 1.0–1.5 s
    m = LogMel(cfg)(x)
    energy = m.max(1)
    on = np.flatnonzero(energy > energy.min() + 10)
    assert cfg.frame_time(on[0]) == pytest.approx(1.0, abs=0.02)
    assert cfg.frame_time(on[-1]) == pytest.approx(1.5, abs=0.02)
    band = int(np.argmax(m[on].mean(0)))
    from hygie.core.audio.mel import _hz_to_mel

    centres = np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2)[1:-1]
    assert abs(band - np.argmin(np.abs(centres - _hz_to_mel(1000)))) <= 1


def test_streaming_equals_offline_for_any_chunking():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000 * 2).astype(np.float32) * 0.1
    off = LogMel()(x)
    st = StreamingLogMel()
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 900))
        parts.append(st.push(x[i:i + n]))
        i += n
    on = np.concatenate(parts)
    assert on.shape == off.shape
    assert np.max(np.abs(on - off)) <= 1e-4


def test_features_do_not_depend_on_the_blas_thread_count(tmp_path):
    """A Ray worker runs with one BLAS thread, `hygie render` with all: the same audio must give the same
    bits, or a batch render drifts from the serial one (one pixel, then the encoder's whole GOP)."""
    import os
    import subprocess
    import sys

    code = ("import numpy as np, sys; from hygie.core.audio.mel import LogMel; "
            "x = np.random.default_rng(3).standard_normal(16000 * 30).astype(np.float32) * 0.1; "
            "np.save(sys.argv[1], LogMel()(x))")
    outs = []
    for threads in ("1", None):
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
        if threads:
            env["OPENBLAS_NUM_THREADS"] = threads
        out = tmp_path / f"mel_{threads or 'all'}.npy"
        subprocess.run([sys.executable, "-c", code, str(out)], env=env, check=True)
        outs.append(np.load(out))
    assert np.array_equal(outs[0], outs[1])
    x = np.random.default_rng(3).standard_normal(16000 * 30).astype(np.float32) * 0.1
    st = StreamingLogMel()
    on = np.concatenate([st.push(x[i:i + 160]) for i in range(0, len(x), 160)])
    assert np.array_equal(on, outs[1][: len(on)])  # live frames: the same bits as the offline features
