"""Where a command may write: never over one of its inputs, never over something it did not make.

`check_output` is called before any work, so a refused output costs nothing. `--force` only
replaces what the same command would have made (an avatar package for `enroll`, an mp4 for
`render`); everything else stays refused, whatever the flags.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterable

from hygie.core.errors import HygieError

log = logging.getLogger(__name__)


def _real(p: Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(p)))


def same_file(a: Path, b: Path) -> bool:
    """a and b are the same file or folder (resolved path, or the same inode through a link)."""
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def inside(child: Path, parent: Path) -> bool:
    """child lies within the folder parent (resolved paths)."""
    c, p = _real(child), _real(parent)
    return c != p and p in c.parents


def is_avatar_package(path: Path) -> bool:
    """A folder or .hygie zip holding an avatar.json of our format: what `enroll --force` may replace."""
    from hygie.core.package.files import FORMAT_NAME, META
    from hygie.core.package.unzip import zip_meta

    if path.is_dir():
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
    elif path.is_file():
        meta = zip_meta(path)
    else:
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT_NAME


def is_video_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".mp4"


def check_output(out: Path, inputs: Iterable[Path | str | None], force: bool, what: str,
                 replaceable: Callable[[Path], bool], error: type[HygieError] = HygieError) -> None:
    """Refuse `out` when it is, holds or lies inside an input, or exists and may not be replaced.

    `what` names what the command writes, with its article ("an avatar package", "an .mp4 video");
    `replaceable(out)` says whether an existing `out` is one (only then does --force replace it).
    """
    out = Path(out).expanduser()
    for i in inputs:
        if i is None:
            continue
        i = Path(i).expanduser()
        if not i.exists():
            continue  # a missing input is reported by the command itself, with its own fix
        if same_file(out, i):
            raise error(f"{out} is also an input of this command; choose another output name "
                             "(nothing was written).")
        if inside(i, out):
            raise error(f"{out} holds the input {i}; choose another output name (nothing was written).")
        if i.is_dir() and inside(out, i):
            raise error(f"{out} lies inside the input {i}; write it somewhere else (nothing was written).")
    if out.exists() or out.is_symlink():
        if not force:
            raise error(f"{out} already exists. Choose another name, or pass --force to replace it.")
        if out.is_symlink() or not replaceable(out):
            kind = "link" if out.is_symlink() else "folder" if out.is_dir() else "file"
            raise error(f"{out} is a {kind} but not {what}; --force only replaces {what}. "
                             "Choose another name (nothing was touched).")
