"""Unpacking a `.hygie` zip into a private cache folder: verified before it is trusted, bounded before it is written.

Order of checks, all before a byte lands on disk: member names (a whitelist, no paths), no
duplicates, declared sizes (per member and in all), avatar.json (capped read) listing every
other member with its sha256. Members are then streamed into a temporary folder with a
byte cap (a header that lies about its size is caught) and hashed on the way; any failure
removes the temporary folder. The cache keeps at most CACHE_MAX_BYTES of unpacked packages
(least recently used go first) and removes temporary folders a crashed run left behind.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

from hygie.core.errors import PackageError
from hygie.core.package.files import KNOWN_FILES, META, remember_sha256, sha256_file
from hygie.core.user_dirs import CACHE_ENV, cache_dir

log = logging.getLogger(__name__)

MAX_MEMBER_BYTES = 1 << 30  # a 5-minute 1080p package is ~150 MB; nothing of ours comes near 1 GiB
MAX_TOTAL_BYTES = 2 << 30
MAX_META_BYTES = 1 << 20
CACHE_MAX_BYTES = 4 << 30
STALE_TMP_S = 3600.0


def packages_cache() -> Path:
    return cache_dir() / "packages"


def _refuse(path: Path, why: str) -> PackageError:
    return PackageError(f"{path}: {why}; refusing a foreign or tampered package. Re-export it, or re-run 'hygie enroll'.")


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def zip_meta(path: Path) -> dict | None:
    """avatar.json of a .hygie file, read without unpacking (None when it is not one or cannot be read)."""
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo(META)
            if info.file_size > MAX_META_BYTES:
                return None
            meta = json.loads(z.read(info).decode("utf-8"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return meta if isinstance(meta, dict) else None


def _check_members(path: Path, z: zipfile.ZipFile) -> tuple[dict, list[zipfile.ZipInfo]]:
    infos = z.infolist()
    names = [i.filename for i in infos]
    for name in names:
        if name not in KNOWN_FILES or "/" in name or "\\" in name:
            raise _refuse(path, f"contains an unexpected member {name!r}")
    if len(set(names)) != len(names):
        raise _refuse(path, "contains a member twice")
    if META not in names:
        raise PackageError(f"{path}: not an avatar package (no {META} inside). Make one with 'hygie enroll'.")
    big = [i for i in infos if i.file_size > MAX_MEMBER_BYTES]
    total = sum(i.file_size for i in infos)
    if big or total > MAX_TOTAL_BYTES:
        what = f"{big[0].filename} would unpack to {_mb(big[0].file_size)}" if big else f"it would unpack to {_mb(total)}"
        raise _refuse(path, f"{what}, beyond any avatar package (at most {_mb(MAX_MEMBER_BYTES)} a file)")
    meta_info = z.getinfo(META)
    if meta_info.file_size > MAX_META_BYTES:
        raise _refuse(path, f"its {META} is {_mb(meta_info.file_size)}")
    with z.open(meta_info) as f:
        raw = f.read(MAX_META_BYTES + 1)
    if len(raw) > MAX_META_BYTES:
        raise _refuse(path, f"its {META} is larger than it says")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _refuse(path, f"its {META} is unreadable ({e})") from None
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise _refuse(path, f"its {META} lists no file hashes")
    for i in infos:
        if i.filename != META and i.filename not in files:
            raise _refuse(path, f"{i.filename} is not listed in {META}")
    return files, infos


def _extract_member(path: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo, dst: Path, digest: str | None) -> None:
    h = hashlib.sha256()
    n = 0
    with z.open(info) as src, open(dst, "wb") as out:
        while True:
            try:
                block = src.read(1 << 20)
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:  # bad CRC, broken stream, cut short
                raise _refuse(path, f"{info.filename} is damaged ({e})") from None
            if not block:
                break
            n += len(block)
            if n > info.file_size:  # the header lied about the size
                raise _refuse(path, f"{info.filename} is larger than its header says")
            h.update(block)
            out.write(block)
    if digest is not None:
        if h.hexdigest() != digest:
            raise _refuse(path, f"{info.filename} does not match its sha256 in {META}")
        remember_sha256(dst, digest)


def extract_zip(path: Path) -> Path:
    """The unpacked, hash-checked folder of a .hygie file (cached by the file's sha256)."""
    path = Path(path)
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise PackageError(f"{path}: not a valid .hygie file (bad zip: {e}). Re-download or re-export it.") from e
    root = packages_cache()
    cache = root / sha256_file(path)[:16]
    if (cache / META).exists():
        os.utime(cache)  # most recently used
        return cache
    with z:
        files, infos = _check_members(path, z)
        need = sum(i.file_size for i in infos)
        try:
            root.mkdir(parents=True, exist_ok=True)
            clean_cache(root, reserve=need)
            tmp = Path(tempfile.mkdtemp(prefix=".x", dir=root))
        except OSError as e:
            raise PackageError(f"{path}: cannot unpack into {root} ({e.strerror}). Free space there, or set "
                               f"{CACHE_ENV} to a writable folder.") from e
        try:
            for info in infos:
                _extract_member(path, z, info, tmp / info.filename, files.get(info.filename))
            try:
                os.replace(tmp, cache)
            except OSError:  # another process unpacked it first
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if e.errno == errno.ENOSPC:
                raise PackageError(f"{path}: disk full while unpacking into {root} (it needs {_mb(need)}). Free "
                                   f"that much space, or set {CACHE_ENV} to a folder on a larger disk.") from e
            raise PackageError(f"{path}: cannot unpack into {root} ({e}).") from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return cache


def _size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file())


def clean_cache(root: Path, reserve: int = 0, max_bytes: int = CACHE_MAX_BYTES) -> None:
    """Remove temporary folders older than an hour, then least recently used packages beyond the bound."""
    now = time.time()
    entries = []
    for d in root.iterdir():
        try:
            if not d.is_dir():
                continue
            age = now - d.stat().st_mtime
            if d.name.startswith("."):
                if age > STALE_TMP_S:  # left by a crashed or killed run
                    shutil.rmtree(d, ignore_errors=True)
                continue
            entries.append((d.stat().st_mtime, _size(d), d))
        except OSError:
            continue
    total = sum(s for _, s, _ in entries) + reserve
    for _, size, d in sorted(entries):
        if total <= max_bytes:
            break
        shutil.rmtree(d, ignore_errors=True)
        total -= size
        log.info("package cache: removed %s (least recently used)", d.name)
