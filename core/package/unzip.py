"""Unpacking a `.hygie` zip into a private cache folder; member paths are never trusted."""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from hygie.core.errors import PackageError
from hygie.core.package.files import KNOWN_FILES, META, sha256_file
from hygie.core.user_dirs import cache_dir

def extract_zip(path: Path) -> Path:
    """Extract a .hygie zip into a private cache folder; member paths are never trusted."""
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise PackageError(f"{path}: not a valid .hygie file (bad zip: {e}). Re-download or re-export it.") from e
    digest = sha256_file(path)[:16]
    cache = cache_dir() / "packages" / digest
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

