"""Streaming log-mel must equal the offline features of the same real audio (<= 1e-4)."""
import numpy as np
import pytest

from audio_fixtures import need_heldout
from hygie.core.media.audio_file import load_audio
from hygie.core.audio.mel import LogMel, MelConfig, StreamingLogMel


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_equals_offline_on_real_audio_random_chunks(seed):
    audio = load_audio(need_heldout())[: 16000 * 20]
    cfg = MelConfig()
    offline = LogMel(cfg)(audio)
    s = StreamingLogMel(cfg)
    rng = np.random.default_rng(seed)
    out, pos = [], 0
    while pos < len(audio):
        n = int(rng.choice([1, 7, 160, 399, 533, 1024, 4410]))
        out.append(s.push(audio[pos:pos + n]))
        pos += n
    streamed = np.concatenate(out)
    assert streamed.shape == offline.shape
    assert np.max(np.abs(streamed - offline)) <= 1e-4
