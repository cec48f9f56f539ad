import numpy as np

from hygie.core.audio.ring_buffer import SampleRing


def test_read_returns_everything_in_order_across_wraps():
    r = SampleRing(1000)
    rng = np.random.default_rng(0)
    src = rng.standard_normal(10_000).astype(np.float32)
    got, pos, i = [], 0, 0
    while pos < len(src):
        n = int(rng.integers(1, 60))
        r.write(src[pos:pos + n])
        pos += n
        if rng.random() < 0.7:
            start, x = r.read()
            assert start == i
            got.append(x)
            i += len(x)
    start, x = r.read()
    got.append(x)
    assert np.array_equal(np.concatenate(got), src)
    assert r.overflows == 0


def test_overflow_is_counted_and_keeps_newest():
    r = SampleRing(50)
    r.write(np.arange(30, dtype=np.float32))
    r.write(np.arange(30, 60, dtype=np.float32))
    start, x = r.read()
    assert r.overflows == 1 and r.samples_lost == 10
    assert start == 10 and np.array_equal(x, np.arange(10, 60, dtype=np.float32))


def test_write_larger_than_capacity():
    r = SampleRing(8)
    r.write(np.arange(20, dtype=np.float32))
    start, x = r.read()
    assert start == 12 and np.array_equal(x, np.arange(12, 20, dtype=np.float32))


def test_read_into_zero_fills_underrun():
    r = SampleRing(16)
    r.write(np.ones(5, np.float32))
    out = np.full(8, 7.0, np.float32)
    assert r.read_into(out) == 5
    assert np.array_equal(out, [1, 1, 1, 1, 1, 0, 0, 0])
    assert r.available() == 0
