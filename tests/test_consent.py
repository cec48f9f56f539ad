"""Consent in the package: recorded by `hygie enroll`, covered by avatar.json's digest, shown in the
report; a package without a record loads with a warning; enrollment refuses without consent."""
from __future__ import annotations

import json
import logging

import pytest

from conftest import DATA, need
from hygie.core.errors import HygieError, PackageError

CLIP = DATA / "grid_speakers" / "sbia1a.mp4"


@pytest.fixture(scope="module")
def consented(tmp_path_factory):
    """A small real enrollment (one 3-s GRID sentence) with a consent record."""
    from hygie.core.enroll.config import EnrollConfig
    from hygie.core.enroll.pipeline import enroll

    out = tmp_path_factory.mktemp("consent") / "pkg"
    enroll([need(CLIP)], out, EnrollConfig(min_usable_s=1, template_seconds=1.0, with_features=False,
                                            consent_name="Ada  Lovelace", consent_method="--consent flag"))
    return out


def test_consent_record_in_avatar_json(consented):
    from hygie.core.package.avatar import load_package
    from hygie.core.package.files import sha256_file
    from hygie.core.provenance.consent import avatar_id, derive_avatar_id, problems

    meta = json.loads((consented / "avatar.json").read_text())
    rec = meta["consent"]
    assert rec["name"] == "Ada Lovelace" and rec["method"] == "--consent flag" and rec["date"][:2] == "20"
    assert rec["sources"] == [{"name": CLIP.name, "sha256": sha256_file(CLIP)}]
    assert "Ada Lovelace" in rec["statement"]
    assert meta["avatar_id"] == derive_avatar_id([sha256_file(CLIP)]) == avatar_id(meta)
    assert problems(meta) == []
    load_package(consented)
    report = (consented / "report.html").read_text()
    assert "Ada Lovelace" in report and meta["avatar_id"] in report


def test_editing_the_consent_record_is_refused(consented, tmp_path):
    import shutil

    from hygie.core.package.avatar import load_package

    pkg = tmp_path / "pkg"
    shutil.copytree(consented, pkg)
    meta = json.loads((pkg / "avatar.json").read_text())
    meta["consent"]["name"] = "Someone Else"
    (pkg / "avatar.json").write_text(json.dumps(meta))
    with pytest.raises(PackageError, match="does not match its own digest"):
        load_package(pkg)


def test_package_without_consent_loads_with_a_warning(grid_avatar, caplog):
    """A package enrolled without a record (the test fixture calls enroll() directly) loads, with a warning;
    the bundled GRID avatar carries its licence as its record."""
    from hygie.core.package.avatar import load_package

    assert "consent" not in json.loads((grid_avatar / "avatar.json").read_text())
    with caplog.at_level(logging.WARNING, logger="hygie.core.package"):
        load_package(grid_avatar)
    assert any("no consent record" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hygie.core.package"):
        bundled = load_package()
    assert bundled.meta["consent"]["method"] == "licence" and "CC BY 4.0" in bundled.meta["consent"]["licence"]
    assert not any("no consent record" in r.getMessage() for r in caplog.records)


def test_enroll_refuses_without_consent_when_not_interactive(tmp_path, capsys, monkeypatch):
    from hygie.core.cli.main import main

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    rc = main(["enroll", str(need(CLIP)), "-o", str(tmp_path / "a"), "--no-train"])
    err = capsys.readouterr().err
    assert rc == 1 and "--consent" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()


def test_interactive_confirmation(monkeypatch):
    from hygie.core.provenance.consent import ask

    answers = iter(["Ada Lovelace", "yes"])
    assert ask(["me.mp4"], read=lambda _: next(answers)) == "Ada Lovelace"
    answers = iter(["Ada Lovelace", "no"])
    assert ask(["me.mp4"], read=lambda _: next(answers)) is None


def test_consent_needs_a_name():
    from hygie.core.provenance.consent import record

    with pytest.raises(HygieError, match="full name"):
        record(" ", "--consent flag", [])
