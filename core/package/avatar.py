"""Opening an avatar package: a directory (or a `.hygie` zip of it) with `avatar.json` and data files.

`load_package` checks the format and the sha256 of every file before anything is used.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hygie.core.audio.mel import MelConfig
from hygie.core.errors import PackageError
from hygie.core.package.bundled import default_avatar_path
from hygie.core.package.files import FORMAT_NAME, FORMAT_VERSION, KNOWN_FILES, META, load_npz, sha256_file
from hygie.core.package.schema import SELF_DIGEST, validate_meta
from hygie.core.package.unzip import MAX_META_BYTES, extract_zip

log = logging.getLogger(__name__)


@dataclass
class Avatar:
    """A verified avatar package. Heavy arrays load lazily on first use."""

    path: Path
    meta: dict[str, Any]
    _cache: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return name in self.meta.get("files", {})

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        if name not in self._cache:
            if not self.has(name):
                raise PackageError(f"{self.path}: has no {name}. Re-run 'hygie enroll' to rebuild the avatar.")
            self._cache[name] = load_npz(self.file(name))
        return self._cache[name]

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    @property
    def frame_size(self) -> tuple[int, int]:
        w, h = self.meta["frame_size"]
        return int(w), int(h)

    @cached_property
    def mel_config(self) -> MelConfig:
        return MelConfig.from_dict(self.meta["audio"])

    @property
    def track(self) -> dict[str, np.ndarray]:
        return self.arrays("track.npz")

    @property
    def pca(self) -> dict[str, np.ndarray]:
        return self.arrays("pca.npz")

    @property
    def mouths(self) -> dict[str, np.ndarray]:
        return self.arrays("mouths.npz")

    @property
    def template(self) -> dict[str, np.ndarray]:
        return self.arrays("template.npz")

    @property
    def features(self) -> dict[str, np.ndarray]:
        f = self.arrays("features.npz")
        if f["mel"].dtype != np.float32:  # stored as float16 (half the size; ~0.005 nats of precision)
            f["mel"] = f["mel"].astype(np.float32)
        return f

    @property
    def has_lip_model(self) -> bool:
        return self.has("lips.onnx") and self.has("lips.onnx.json")

    @cached_property
    def closed_coeffs(self) -> np.ndarray:
        """The person's mouth at rest: median PCA coefficients over the idle-loop footage."""
        tc = self.track["coeffs"][self.template["frame"]].astype(np.float32)
        tc = tc[np.isfinite(tc).all(1)]
        return (np.median(tc, axis=0) if len(tc) else np.zeros(self.track["coeffs"].shape[1])).astype(np.float32)

    def coeffs_to_lips(self, coeffs: np.ndarray) -> np.ndarray:
        """PCA coefficients (..., K) -> canonical lip points (..., 40, 2)."""
        p = self.pca
        flat = p["mean"] + np.asarray(coeffs, np.float32) @ p["components"]
        return flat.reshape(*flat.shape[:-1], -1, 2)

    def lips_to_coeffs(self, lips: np.ndarray) -> np.ndarray:
        p = self.pca
        flat = np.asarray(lips, np.float32).reshape(*lips.shape[:-2], -1)
        return (flat - p["mean"]) @ p["components"].T


def load_package(path: str | os.PathLike | None = None, verify: bool = True) -> Avatar:
    """Open and verify an avatar package; None means the bundled default avatar."""
    if path is None:
        p = default_avatar_path()
        if not (p / META).exists():
            raise PackageError(
                "the bundled default avatar is missing from this install. Reinstall hygie-avatar, "
                "or pass --avatar with a package made by 'hygie enroll'."
            )
    else:
        p = Path(path).expanduser()
    if not p.exists():
        raise PackageError(f"{p}: no such avatar. Make one with 'hygie enroll VIDEO -o {p}'.")
    if p.is_file():
        p = extract_zip(p)
    meta_path = p / META
    if not meta_path.exists():
        raise PackageError(f"{p}: not an avatar package (no {META}). Make one with 'hygie enroll'.")
    try:
        if meta_path.stat().st_size > MAX_META_BYTES:
            raise PackageError(f"{meta_path}: {meta_path.stat().st_size} bytes, not an avatar.json; the package is "
                               "foreign or damaged. Re-run 'hygie enroll'.")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PackageError(f"{meta_path}: unreadable ({e}); the package is damaged. Re-run 'hygie enroll'.") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise PackageError(f"{p}: not a Hygie avatar package (format {fmt!r}).")
    ver = meta.get("format_version")
    if ver != FORMAT_VERSION:
        raise PackageError(
            f"{p}: avatar format version {ver}, this hygie reads version {FORMAT_VERSION}. "
            + ("Upgrade hygie-avatar." if isinstance(ver, int) and ver > FORMAT_VERSION else "Re-run 'hygie enroll' on the source video.")
        )
    validate_meta(meta, p)
    if SELF_DIGEST not in meta:
        log.warning("%s: avatar.json carries no digest of itself (made by an older hygie); run 'hygie train %s' "
                    "to refresh it", p, p)
    files = meta.get("files", {})
    for req in ("track.npz", "pca.npz", "mouths.npz", "template.npz"):
        if req not in files:
            raise PackageError(f"{p}: incomplete package, {req} is not listed. Re-run 'hygie enroll'.")
    if verify:
        listed = set(files) | {META}
        extra = sorted(f.name for f in p.iterdir() if not f.name.startswith(".") and f.name not in listed)
        if extra:
            raise PackageError(f"{p}: holds {extra[0]!r}, which its {META} does not list: a foreign or tampered "
                               "package. Move that file out of the package folder, or re-run 'hygie enroll'.")
        for name, digest in files.items():
            if name not in KNOWN_FILES:
                raise PackageError(f"{p}: lists an unexpected file {name!r}; refusing a tampered package.")
            fp = p / name
            if not fp.exists():
                raise PackageError(f"{p}: {name} is missing. The package is incomplete; re-run 'hygie enroll'.")
            if sha256_file(fp) != digest:
                raise PackageError(
                    f"{p}: {name} does not match its sha256 in {META}: the package was modified or damaged. "
                    "Re-run 'hygie enroll' (or 'hygie train' if only the lip model changed)."
                )
    from hygie.core.provenance.consent import problems

    for msg in problems(meta):
        log.warning("%s: %s", p, msg)
    return Avatar(p, meta)
