"""The 64 bits the watermark carries, and how they are checked and protected.

    bits  0-3   scheme version (1)
    bit   4     synthetic: 1 = made by an AI avatar (always 1 in what Hygie writes)
    bit   5     source: 0 = rendered file, 1 = live camera
    bits  6-7   reserved (0)
    bits  8-39  avatar id: the first 32 bits of the package's id (avatar.json "avatar_id")
    bits 40-63  time code: UTC minutes since 2025-01-01 00:00 (24 bits, until 2056)

A CRC-16 is appended (80 bits), then the K=7 rate-1/3 convolutional code gives 258 coded bits.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np

from hygie.core.provenance.ecc import conv_encode, crc16, viterbi_decode

VERSION = 1
MESSAGE_BITS = 64
CHECKED_BITS = MESSAGE_BITS + 16
EPOCH = _dt.datetime(2025, 1, 1, tzinfo=_dt.timezone.utc)
CODED_BITS = len(conv_encode(np.zeros(CHECKED_BITS, np.uint8)))


def minutes_since_epoch(when: _dt.datetime | None = None) -> int:
    when = when or _dt.datetime.now(_dt.timezone.utc)
    return max(0, int((when - EPOCH).total_seconds() // 60)) & 0xFFFFFF


@dataclass(frozen=True)
class Payload:
    avatar_id: int  # 32 bits
    minutes: int  # time code, UTC minutes since EPOCH
    live: bool = False
    synthetic: bool = True
    version: int = VERSION

    @property
    def avatar_hex(self) -> str:
        return f"{self.avatar_id:08x}"

    @property
    def time(self) -> _dt.datetime:
        return EPOCH + _dt.timedelta(minutes=self.minutes)

    def to_int(self) -> int:
        return ((self.version & 0xF) << 60 | int(self.synthetic) << 59 | int(self.live) << 58
                | (self.avatar_id & 0xFFFFFFFF) << 24 | (self.minutes & 0xFFFFFF))

    @classmethod
    def from_int(cls, v: int) -> "Payload":
        return cls(avatar_id=(v >> 24) & 0xFFFFFFFF, minutes=v & 0xFFFFFF, live=bool(v >> 58 & 1),
                   synthetic=bool(v >> 59 & 1), version=v >> 60 & 0xF)

    def bits(self) -> np.ndarray:
        v = self.to_int()
        return np.array([(v >> (MESSAGE_BITS - 1 - i)) & 1 for i in range(MESSAGE_BITS)], np.uint8)

    def coded(self) -> np.ndarray:
        m = self.bits()
        return conv_encode(np.concatenate([m, crc16(m)]))

    def describe(self) -> str:
        kind = "live camera" if self.live else "rendered file"
        return (f"{'synthetic' if self.synthetic else 'NOT flagged synthetic'}, avatar {self.avatar_hex}, "
                f"{kind}, made {self.time:%Y-%m-%d %H:%M} UTC")

    def as_dict(self) -> dict:
        return {"synthetic": self.synthetic, "avatar_id": self.avatar_hex, "live": self.live,
                "time_utc": self.time.isoformat(timespec="minutes"), "version": self.version,
                "hex": f"{self.to_int():016x}"}


def decode(soft: np.ndarray) -> Payload | None:
    """Soft coded bits (positive = 0) -> the payload when its CRC and version check out, else None."""
    bits = viterbi_decode(soft, CHECKED_BITS)
    m, crc = bits[:MESSAGE_BITS], bits[MESSAGE_BITS:]
    if not np.array_equal(crc16(m), crc):
        return None
    v = 0
    for b in m:
        v = (v << 1) | int(b)
    p = Payload.from_int(v)
    return p if p.version == VERSION else None
