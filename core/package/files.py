"""The package's files: names, format version, hashes and .npz arrays (never pickle).

Every file is listed in avatar.json with its sha256; loading refuses a package whose
format version is unknown or whose files do not match.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from hygie.core.errors import PackageError

FORMAT_NAME = "hygie-avatar"
FORMAT_VERSION = 1
META = "avatar.json"
# The only names a package may contain: a zip member outside this set is refused.
KNOWN_FILES = {
    META, "track.npz", "pca.npz", "features.npz", "mouths.npz", "template.npz",
    "lips.onnx", "lips.onnx.json", "report.html", "quality.json", "training.json", "body.mp4", "body.npz",
}
PACKAGE_SUFFIX = ".hygie"


# Digests this process already computed or wrote, by file identity: enrollment, training and
# loading each need every file's hash, and a package should be read once, not three times.
_digests: dict[tuple[int, int, int, int], str] = {}


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def sha256_file(path: Path) -> str:
    key = _identity(path)
    known = _digests.get(key)
    if known is not None:
        return known
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    _digests[key] = digest = h.hexdigest()
    return digest


def remember_sha256(path: Path, digest: str) -> None:
    """Record the digest of a file known to hold verified bytes (e.g. a copy of a verified file)."""
    _digests[_identity(path)] = digest


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise TypeError(f"{k}: object arrays would need pickle")
    np.savez_compressed(path, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:  # numpy's refusal of an object (pickled) array
        raise PackageError(f"{path}: holds pickled objects, which Hygie never writes nor loads: the package is "
                           "foreign or tampered with. Re-run 'hygie enroll'.") from e
    except (OSError, EOFError, KeyError) as e:  # not a zip, truncated, or a member that is not an array
        raise PackageError(f"{path}: unreadable ({e}); the package is damaged. Re-run 'hygie enroll'.") from e


def write_meta(pkg_dir: Path, meta: dict[str, Any]) -> None:
    """Recompute sha256 of every file in the package and write avatar.json atomically."""
    files = {}
    for p in sorted(pkg_dir.iterdir()):
        if p.name == META or p.name.startswith("."):
            continue
        if p.name not in KNOWN_FILES:
            raise PackageError(f"{p}: unexpected file in an avatar package")
        files[p.name] = sha256_file(p)
    from hygie.core.package.schema import SELF_DIGEST, canonical_digest

    meta = dict(meta, format=FORMAT_NAME, format_version=FORMAT_VERSION, files=files)
    meta.pop(SELF_DIGEST, None)
    meta[SELF_DIGEST] = canonical_digest(meta)
    tmp = pkg_dir / f".{META}.tmp"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=False, allow_nan=False))
    os.replace(tmp, pkg_dir / META)


