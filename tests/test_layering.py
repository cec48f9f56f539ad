"""The house rules, read from the code: which folder may import which, and one owner per fact.

    core (ground floor)  imports only core           (core/cli/, the command layer, may reach everything)
    models               imports core                 (torch only here)
    plugin               imports core
    installer            imports core and plugin
    nothing              imports tests
See docs/architecture.md.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOPS = ("core", "models", "plugin", "installer")
# what each top-level folder may import of the hygie namespace (besides itself)
ALLOWED = {"core": {"core"}, "models": {"core", "models"}, "plugin": {"core", "plugin"},
           "installer": {"core", "plugin", "installer"}}


def _modules() -> list[Path]:
    return [p for top in TOPS for p in sorted((REPO / top).rglob("*.py"))]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module name imported anywhere in the file (top level or inside functions)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            # `from hygie import models` names a package too
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "hygie"]
    return out


def _code(path: Path) -> str:
    """The file's code without docstrings and comments (prose may name things; code must not copy them)."""
    src = path.read_text()
    lines = src.splitlines()
    drop: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            drop.update(range(body[0].lineno - 1, body[0].end_lineno))
    return "\n".join(ln.split("  #")[0] for i, ln in enumerate(lines)
                     if i not in drop and not ln.lstrip().startswith("#"))


def _layer(path: Path) -> str:
    rel = path.relative_to(REPO)
    return "cli" if rel.parts[:2] == ("core", "cli") else rel.parts[0]


def test_every_folder_imports_only_what_its_layer_may():
    bad = []
    for path in _modules():
        layer = _layer(path)
        if layer == "cli":
            continue  # the command layer wires everything together
        for line, name in _imports(path):
            m = re.match(r"hygie\.(\w+)", name)
            if m and m.group(1) not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not bad, "layering broken (see docs/architecture.md):\n" + "\n".join(bad)


def test_nothing_imports_tests_or_patches_sys_path():
    bad = []
    for path in _modules():
        text = path.read_text()
        for line, name in _imports(path):
            if name == "tests" or name.startswith("tests.") or name in {"conftest", "vcam_fixtures", "audio_fixtures"}:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {name}")
        if "sys.path.insert" in text or "sys.path.append" in text:
            bad.append(f"{path.relative_to(REPO)}: changes sys.path")
    assert not bad, "\n".join(bad)


def test_core_and_the_runtime_never_import_torch():
    bad = [f"{p.relative_to(REPO)}:{line}" for p in _modules() if p.relative_to(REPO).parts[0] != "models"
           for line, name in _imports(p) if name.split(".")[0] == "torch"]
    assert not bad, "torch is for training only (models/): " + ", ".join(bad)


def test_every_package_folder_ships_in_the_wheel():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"hygie." + ".".join(p.parent.relative_to(REPO).parts) for top in TOPS
             for p in (REPO / top).rglob("__init__.py")}
    assert found == listed, f"not in pyproject packages: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"


def test_the_installers_name_the_camera_as_core_does():
    from hygie.core.live.camera_identity import CAMERA_NAME, MODPROBE_OPTIONS

    sh = (REPO / "installer" / "install.sh").read_text()
    name = re.search(r'^CAMERA_NAME="([^"]+)"', sh, re.M).group(1)
    opts = re.search(r'^V4L2_OPTIONS="(.+)"$', sh, re.M).group(1).replace('\\"', '"').replace("${CAMERA_NAME}", name)
    assert (name, opts) == (CAMERA_NAME, MODPROBE_OPTIONS)
    assert sh.count("modprobe v4l2loopback devices=") == 0, "install.sh spells the module options twice"
    ps1 = (REPO / "installer" / "install.ps1").read_text()
    assert re.search(r'^\$CameraName = "([^"]+)"', ps1, re.M).group(1) == CAMERA_NAME


@pytest.mark.parametrize("fact, pattern", [
    ("the camera name", r'"Hygie Avatar"'),
    ("the v4l2loopback options", r"card_label="),
    ("the /sys lookup of cameras", r"video4linux"),
    ("a size parser", r"def parse_size\("),
    ("canonical alignment of landmarks", r"\.align\("),
    ("zip packing of a package", r"zipfile\.ZipFile\("),
    ("per-user folders", r"XDG_(CONFIG|CACHE|STATE)_HOME"),
])
def test_each_fact_has_one_owner(fact, pattern):
    owners = {
        "the camera name": {"core/live/camera_identity.py"},
        "the v4l2loopback options": {"core/live/camera_identity.py"},
        "the /sys lookup of cameras": {"core/live/camera_identity.py"},
        "a size parser": {"core/limits.py"},
        "canonical alignment of landmarks": {"core/face/canonical.py"},
        "zip packing of a package": {"core/package/writer.py", "core/package/unzip.py"},
        # ours, and OBS's own config folders (where its websocket settings are read)
        "per-user folders": {"core/user_dirs.py", "plugin/obs/config.py"},
    }[fact]
    found = {str(p.relative_to(REPO)) for p in _modules()
             if p.name != "hygie_obs.py"  # the OBS script runs inside OBS on the standard library alone
             and re.search(pattern, _code(p))}
    assert found <= owners, f"{fact} is spelled outside its owner {sorted(owners)}: {sorted(found - owners)}"
