"""avatar.json checked before anything in it is used: types and ranges, and its own digest.

A package's data files are covered by the sha256 list in avatar.json; avatar.json itself
carries `meta_sha256`, the digest of its canonical form (sorted keys, no spaces) without that
field, so a damaged or hand-edited avatar.json is refused like a damaged data file. (A digest
is not a signature: someone who rewrites every file and every digest makes a new package.)
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from hygie.core.errors import PackageError

SELF_DIGEST = "meta_sha256"


def canonical_digest(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != SELF_DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


class _Checker:
    def __init__(self, where: Path):
        self.where = where

    def fail(self, key: str, got: Any, want: str) -> PackageError:
        shown = json.dumps(got)[:60] if not isinstance(got, _Missing) else "missing"
        return PackageError(f"{self.where}: avatar.json: {key} is {shown}, expected {want}; the package is damaged "
                            "or was edited by hand. Re-run 'hygie enroll' on the source video.")

    def num(self, d: dict, key: str, lo: float, hi: float, integer: bool = False, path: str = "") -> Any:
        v = d.get(key, _MISSING)
        ok = (_is_int(v) if integer else _is_num(v)) and lo <= v <= hi
        if not ok:
            raise self.fail(path + key, v, f"{'an integer' if integer else 'a number'} from {lo:g} to {hi:g}")
        return v

    def pair(self, d: dict, key: str, lo: float, hi: tuple[float, float], integer: bool, path: str = "") -> None:
        v = d.get(key, _MISSING)
        if not (isinstance(v, list) and len(v) == 2):
            raise self.fail(path + key, v, "a list of two numbers")
        for i, x in enumerate(v):
            self.num({key: x}, key, lo, hi[i], integer, path)

    def table(self, d: dict, key: str) -> dict:
        v = d.get(key, _MISSING)
        if not isinstance(v, dict):
            raise self.fail(key, v, "a table")
        return v


class _Missing:
    pass


_MISSING = _Missing()


def validate_meta(meta: Any, where: Path) -> None:
    """Raise PackageError (one line, with the fix) unless avatar.json holds what loading and rendering use."""
    c = _Checker(where)
    if not isinstance(meta, dict):
        raise c.fail("(the whole file)", meta, "a JSON object")
    files = meta.get("files", _MISSING)
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) and len(v) == 64
                                             for k, v in files.items()):
        raise c.fail("files", files, "a table of file names and sha256 digests")
    c.num(meta, "fps", 1, 240)
    c.pair(meta, "frame_size", 16, (7680, 4320), integer=True)
    crop = c.table(meta, "crop")
    c.pair(crop, "size", 2, (4096, 4096), integer=True, path="crop.")
    c.pair(crop, "origin", -100, (100, 100), integer=False, path="crop.")
    c.num(crop, "px_per_iod", 1, 10000, path="crop.")
    audio = c.table(meta, "audio")
    c.num(audio, "sample_rate", 8000, 48000, integer=True, path="audio.")
    c.num(audio, "n_mels", 1, 256, integer=True, path="audio.")
    c.num(audio, "hop_length", 1, 4800, integer=True, path="audio.")
    c.num(audio, "win_length", 1, 9600, integer=True, path="audio.")
    c.num(audio, "n_fft", audio["win_length"], 1 << 16, integer=True, path="audio.")
    tpl = c.table(meta, "template")
    c.num(tpl, "frames", 1, 10_000_000, integer=True, path="template.")
    pca = c.table(meta, "pca")
    c.num(pca, "n_components", 1, 80, integer=True, path="pca.")
    digest = meta.get(SELF_DIGEST)
    if digest is not None and digest != canonical_digest(meta):
        raise PackageError(f"{where}: avatar.json does not match its own digest: it was modified or damaged. "
                           "Re-run 'hygie enroll' (or 'hygie train' if only the lip model changed).")
