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


@pytest.fixture(scope="module")
def full_package(tmp_path_factory):
    """The bundled avatar, copied and re-hashed: it holds every kind of file a package can."""
    import shutil

    from hygie.core.package.bundled import default_avatar_path

    dst = tmp_path_factory.mktemp("full") / "pkg"
    shutil.copytree(default_avatar_path(), dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    update_package(dst)
    return dst


def _copy(src, tmp_path):
    import shutil

    dst = tmp_path / "pkg"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("name", ["avatar.json", "track.npz", "pca.npz", "features.npz", "mouths.npz", "template.npz",
                                  "lips.onnx", "lips.onnx.json", "report.html", "quality.json", "training.json"])
def test_every_file_kind_is_covered(full_package, tmp_path, name):
    """One flipped byte in any file of the package, JSON and model included, is refused."""
    pkg = _copy(full_package, tmp_path)
    assert name in json.loads((pkg / "avatar.json").read_text())["files"] or name == "avatar.json"
    p = pkg / name
    data = bytearray(p.read_bytes())
    k = data.find(b"0.") if p.suffix in (".json", ".html") else len(data) // 2  # a digit in a text file
    data[k] = ord("7") if data[k] != ord("7") else ord("8")
    p.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="does not match|damaged|unreadable"):
        load_package(pkg)


def test_an_unlisted_extra_file_is_refused(full_package, tmp_path):
    pkg = _copy(full_package, tmp_path)
    (pkg / "lips2.onnx").write_bytes((pkg / "lips.onnx").read_bytes())
    with pytest.raises(PackageError, match="does not list"):
        load_package(pkg)
    (pkg / "lips2.onnx").unlink()
    (pkg / ".DS_Store").write_bytes(b"finder")  # hidden files of the desktop are not part of a package
    assert load_package(pkg).has_lip_model
