"""Avatar package I/O: a directory (or a `.hygie` zip of it) with `avatar.json` and data files.

Every file is listed in avatar.json with its sha256; loading refuses a package whose
format version is unknown or whose files do not match. Arrays are .npz (never pickle).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hygie.core.errors import PackageError
from hygie.core.mel import MelConfig

log = logging.getLogger(__name__)

FORMAT_NAME = "hygie-avatar"
FORMAT_VERSION = 1
META = "avatar.json"
# The only names a package may contain: a zip member outside this set is refused.
KNOWN_FILES = {
    META, "track.npz", "pca.npz", "features.npz", "mouths.npz", "template.npz",
    "lips.onnx", "lips.onnx.json", "report.html", "quality.json", "training.json",
}
PACKAGE_SUFFIX = ".hygie"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise TypeError(f"{k}: object arrays would need pickle")
    np.savez_compressed(path, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def meta_digest(meta: dict[str, Any]) -> str:
    """sha256 of avatar.json's content without its own digest (canonical JSON): covers the consent
    record and every other field the way the file hashes cover the data files."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_meta(pkg_dir: Path, meta: dict[str, Any]) -> None:
    """Recompute sha256 of every file in the package (and of avatar.json's own content) and write
    avatar.json atomically."""
    files = {}
    for p in sorted(pkg_dir.iterdir()):
        if p.name == META or p.name.startswith("."):
            continue
        if p.name not in KNOWN_FILES:
            raise PackageError(f"{p}: unexpected file in an avatar package")
        files[p.name] = sha256_file(p)
    meta = dict(meta, format=FORMAT_NAME, format_version=FORMAT_VERSION, files=files)
    meta["meta_sha256"] = meta_digest(meta)
    tmp = pkg_dir / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=False))
    os.replace(tmp, pkg_dir / META)


def update_package(pkg_dir: Path, meta_updates: dict[str, Any] | None = None) -> None:
    """After adding/replacing files (e.g. lips.onnx), refresh hashes and merge meta updates."""
    meta = json.loads((pkg_dir / META).read_text())
    if meta_updates:
        meta.update(meta_updates)
    write_meta(pkg_dir, meta)


class PackageWriter:
    """Write into a hidden temporary folder next to the target; `commit()` renames it into place.

    A failure (or Ctrl-C) before commit leaves nothing half-written at the target.
    """

    def __init__(self, target: Path, force: bool = False):
        self.target = Path(target)
        self.zip = self.target.suffix == PACKAGE_SUFFIX
        if self.target.exists() and not force:
            raise PackageError(f"{self.target} already exists. Choose another name or pass --force to replace it.")
        parent = self.target.parent
        parent.mkdir(parents=True, exist_ok=True)
        if not os.access(parent, os.W_OK):
            raise PackageError(f"{parent}: not writable. Choose another output folder.")
        self.dir = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=parent))

    def path(self, name: str) -> Path:
        assert name in KNOWN_FILES, name
        return self.dir / name

    def commit(self, meta: dict[str, Any]) -> Path:
        write_meta(self.dir, meta)
        if self.zip:
            tmpzip = self.dir.with_suffix(".zip.tmp")
            with zipfile.ZipFile(tmpzip, "w", zipfile.ZIP_STORED) as z:  # data is already compressed
                for p in sorted(self.dir.iterdir()):
                    z.write(p, p.name)
            shutil.rmtree(self.dir)
            os.replace(tmpzip, self.target)
        else:
            backup = None
            if self.target.exists():
                backup = self.target.with_name(f".{self.target.name}.old")
                shutil.rmtree(backup, ignore_errors=True)
                os.replace(self.target, backup)
            os.replace(self.dir, self.target)
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True) if backup.is_dir() else backup.unlink()
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PackageWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def _extract_zip(path: Path) -> Path:
    """Extract a .hygie zip into a private cache folder; member paths are never trusted."""
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise PackageError(f"{path}: not a valid .hygie file (bad zip: {e}). Re-download or re-export it.") from e
    digest = sha256_file(path)[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hygie" / "packages" / digest
    if (cache / META).exists():
        return cache
    tmp = Path(tempfile.mkdtemp(prefix=".x", dir=_mkdir(cache.parent)))
    with z:
        for info in z.infolist():
            name = info.filename
            if name not in KNOWN_FILES or "/" in name or "\\" in name:
                shutil.rmtree(tmp, ignore_errors=True)
                raise PackageError(f"{path}: contains an unexpected member {name!r}; refusing a foreign or tampered package.")
            with z.open(info) as src, open(tmp / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    try:
        os.replace(tmp, cache)
    except OSError:  # another process extracted it first
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def default_avatar_path() -> Path:
    """The avatar shipped inside the wheel (models/default_avatar)."""
    import hygie.models

    return Path(hygie.models.__file__).parent / "default_avatar"


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
        p = _extract_zip(p)
    meta_path = p / META
    if not meta_path.exists():
        raise PackageError(f"{p}: not an avatar package (no {META}). Make one with 'hygie enroll'.")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PackageError(f"{meta_path}: unreadable ({e}); the package is damaged. Re-run 'hygie enroll'.") from e
    if meta.get("format") != FORMAT_NAME:
        raise PackageError(f"{p}: not a Hygie avatar package (format {meta.get('format')!r}).")
    ver = meta.get("format_version")
    if ver != FORMAT_VERSION:
        raise PackageError(
            f"{p}: avatar format version {ver}, this hygie reads version {FORMAT_VERSION}. "
            + ("Upgrade hygie-avatar." if isinstance(ver, int) and ver > FORMAT_VERSION else "Re-run 'hygie enroll' on the source video.")
        )
    files = meta.get("files", {})
    for req in ("track.npz", "pca.npz", "mouths.npz", "template.npz"):
        if req not in files:
            raise PackageError(f"{p}: incomplete package, {req} is not listed. Re-run 'hygie enroll'.")
    if verify:
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
        # older packages (the bundled avatar before consent records) have no digest of their own
        if "meta_sha256" in meta and meta["meta_sha256"] != meta_digest(meta):
            raise PackageError(f"{meta_path} was edited after it was written (its digest does not match): "
                               "the package was modified or damaged. Re-run 'hygie enroll'.")
    from hygie.core.provenance.consent import problems

    for msg in problems(meta):
        log.warning("%s: %s", p, msg)
    return Avatar(p, meta)
