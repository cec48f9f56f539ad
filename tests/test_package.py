"""Package verification: tampered, foreign, other-version and hostile zips are refused."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import zip_package
from hygie.core.errors import PackageError
from hygie.core.package.avatar import load_package
from hygie.core.package.writer import update_package


def test_tampered_file_is_refused(grid_avatar_copy):
    p = grid_avatar_copy / "pca.npz"
    data = bytearray(p.read_bytes())
    data[-10] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="pca.npz does not match its sha256"):
        load_package(grid_avatar_copy)


def test_missing_file_is_refused(grid_avatar_copy):
    (grid_avatar_copy / "mouths.npz").unlink()
    with pytest.raises(PackageError, match="mouths.npz is missing"):
        load_package(grid_avatar_copy)


def test_other_version_and_foreign_format(grid_avatar_copy):
    meta_p = grid_avatar_copy / "avatar.json"
    meta = json.loads(meta_p.read_text())
    meta_p.write_text(json.dumps(dict(meta, format_version=99)))
    with pytest.raises(PackageError, match="version 99.*Upgrade hygie-avatar"):
        load_package(grid_avatar_copy)
    meta_p.write_text(json.dumps(dict(meta, format="something-else")))
    with pytest.raises(PackageError, match="not a Hygie avatar package"):
        load_package(grid_avatar_copy)
    meta_p.write_text("{not json")
    with pytest.raises(PackageError, match="unreadable"):
        load_package(grid_avatar_copy)


def test_update_package_rehashes_after_a_change(grid_avatar_copy):
    np.savez_compressed(grid_avatar_copy / "quality.json.npz", a=np.zeros(1))  # stray file
    (grid_avatar_copy / "quality.json.npz").unlink()
    (grid_avatar_copy / "quality.json").write_text('{"lmd": 0.01}')
    update_package(grid_avatar_copy, {"note": "x"})
    av = load_package(grid_avatar_copy)
    assert av.meta["note"] == "x" and "quality.json" in av.meta["files"]


def test_zip_with_path_traversal_is_refused(grid_avatar, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    z = zip_package(grid_avatar, tmp_path / "evil.hygie", {"../../escape.txt": "owned"})
    with pytest.raises(PackageError, match="unexpected member"):
        load_package(z)
    assert not (tmp_path / "escape.txt").exists()


def test_not_a_zip_and_not_a_package(tmp_path):
    bad = tmp_path / "x.hygie"
    bad.write_text("hello")
    with pytest.raises(PackageError, match="not a valid .hygie file"):
        load_package(bad)
    (tmp_path / "dir").mkdir()
    with pytest.raises(PackageError, match="not an avatar package"):
        load_package(tmp_path / "dir")
    with pytest.raises(PackageError, match="no such avatar.*hygie enroll"):
        load_package(tmp_path / "nope")
