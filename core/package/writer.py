"""Writing a package: into a hidden temporary folder beside the target, renamed into place at the end."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hygie.core.errors import HygieError, PackageError
from hygie.core.package.files import KNOWN_FILES, META, PACKAGE_SUFFIX, remember_sha256, write_meta

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
        from hygie.core.outputs import check_output, is_avatar_package

        self.target = Path(target)
        self.zip = self.target.suffix == PACKAGE_SUFFIX
        # --force replaces an avatar package, never another folder or file
        check_output(self.target, [], force, "an avatar package", is_avatar_package, PackageError)
        if self.target.exists() and self.target.is_dir() == self.zip:
            raise PackageError(f"{self.target} is {'a folder' if self.zip else 'a .hygie file'}; "
                               f"write the {'.hygie file' if self.zip else 'package folder'} under another name.")
        parent = self.target.parent
        parent.mkdir(parents=True, exist_ok=True)
        if not os.access(parent, os.W_OK):
            raise PackageError(f"{parent}: not writable. Choose another output folder.")
        self.dir = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=parent))

    def path(self, name: str) -> Path:
        assert name in KNOWN_FILES, name
        return self.dir / name

    def commit(self, meta: dict[str, Any] | None) -> Path:
        """Write avatar.json from `meta` (None: the folder's own, already refreshed) and move into place."""
        if meta is not None:
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



@contextmanager
def open_for_update(path: Path) -> Iterator[Path]:
    """A writable copy of the verified package at `path` (folder or .hygie), swapped in atomically.

    Write or replace files in the yielded folder and call `update_package` on it; when the block
    ends without an error the copy replaces the original (re-zipped for a .hygie file). On any
    error the original is left exactly as it was.
    """
    from hygie.core.package.avatar import load_package

    path = Path(path)
    if not path.exists():
        raise HygieError(f"{path}: no such avatar. Make one with 'hygie enroll VIDEO -o {path}'.")
    if path.is_dir() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        raise HygieError(f"{path}: the package folder is not writable. Copy it somewhere writable "
                         "(cp -r) and use the copy.")
    avatar = load_package(path)  # verifies every file, and refuses foreign zip members
    writer = PackageWriter(path, force=True)
    try:
        for name, digest in avatar.meta["files"].items():
            shutil.copyfile(avatar.path / name, writer.dir / name)
            remember_sha256(writer.dir / name, digest)  # verified bytes: no need to hash them again
        shutil.copyfile(avatar.path / META, writer.dir / META)
        yield writer.dir
        writer.commit(None)
    except BaseException:
        writer.abort()
        raise
