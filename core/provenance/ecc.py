"""Error control for the watermark payload: CRC-16 and a K=7 rate-1/3 convolutional code (soft Viterbi).

The code is the LTE one (generators 133, 171, 165 octal, free distance 15): it corrects
scattered chip errors well and its decoder takes the soft correlations as they come.
"""
from __future__ import annotations

import numpy as np

K = 7  # constraint length
GENERATORS = (0o133, 0o171, 0o165)
N_STATES = 1 << (K - 1)


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT (poly 0x1021, init 0xFFFF) of a bit array, as 16 bits (MSB first)."""
    reg = 0xFFFF
    for b in np.asarray(bits, np.uint8):
        top = ((reg >> 15) & 1) ^ int(b)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= 0x1021
    return np.array([(reg >> (15 - i)) & 1 for i in range(16)], np.uint8)


def _parity(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    for s in (4, 2, 1):
        x ^= x >> s
    return x & 1


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """out[state, bit] -> (3,) coded bits; nxt[state, bit] -> next state (state = last K-1 input bits)."""
    states = np.arange(N_STATES)
    out = np.zeros((N_STATES, 2, len(GENERATORS)), np.uint8)
    nxt = np.zeros((N_STATES, 2), np.int64)
    for b in (0, 1):
        reg = (b << (K - 1)) | states  # newest bit in the top position
        for g, gen in enumerate(GENERATORS):
            out[:, b, g] = _parity(reg & gen)
        nxt[:, b] = reg >> 1
    return out, nxt


_OUT, _NEXT = _tables()


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Encode with K-1 zero tail bits (the decoder ends in state 0): len 3 * (n + 6)."""
    bits = np.concatenate([np.asarray(bits, np.uint8), np.zeros(K - 1, np.uint8)])
    state = 0
    out = np.empty((len(bits), len(GENERATORS)), np.uint8)
    for i, b in enumerate(bits):
        out[i] = _OUT[state, b]
        state = _NEXT[state, b]
    return out.ravel()


def viterbi_decode(soft: np.ndarray, n_bits: int) -> np.ndarray:
    """Soft values (positive = bit 0, as correlations come out) -> n_bits decoded bits."""
    steps = n_bits + K - 1
    y = np.asarray(soft, np.float64)[: steps * len(GENERATORS)].reshape(steps, len(GENERATORS))
    sign = 1.0 - 2.0 * _OUT.astype(np.float64)  # bit 0 -> +1
    metric = np.full(N_STATES, -np.inf)
    metric[0] = 0.0
    back = np.zeros((steps, N_STATES), np.int64)  # predecessor * 2 + input bit
    # predecessors of each state: state s is reached from p with bit b where _NEXT[p, b] == s
    src_state = np.zeros((N_STATES, 2), np.int64)
    src_bit = np.zeros((N_STATES, 2), np.int64)
    fill = np.zeros(N_STATES, np.int64)
    for p in range(N_STATES):
        for b in (0, 1):
            s = _NEXT[p, b]
            src_state[s, fill[s]] = p
            src_bit[s, fill[s]] = b
            fill[s] += 1
    for t in range(steps):
        branch = sign @ y[t]  # (states, 2)
        cand = metric[src_state] + branch[src_state, src_bit]  # (states, 2)
        pick = np.argmax(cand, axis=1)
        metric = cand[np.arange(N_STATES), pick]
        back[t] = src_state[np.arange(N_STATES), pick] * 2 + src_bit[np.arange(N_STATES), pick]
    state = 0
    bits = np.zeros(steps, np.uint8)
    for t in range(steps - 1, -1, -1):
        code = back[t, state]
        bits[t] = code & 1
        state = code >> 1
    return bits[:n_bits]
