"""Marked as synthetic: the watermark (embedding, degradations, false positives), Content Credentials
on rendered files (signed, read, tampered), frames from the live agent, and the local signing chain.

Degradations are real re-encodes (PyAV/libx264) of real footage; clips are cut short to keep CI fast
(`hygie bench watermark` runs the full table, docs/provenance.md has its figures).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vcam_fixtures
from conftest import DATA, GRID_HELDOUT, OBAMA, need
from hygie.core.bench import watermark as B
from hygie.core.provenance import payload as PL
from hygie.core.provenance import watermark as WM

P = PL.Payload(0x0A1B2C3D, PL.minutes_since_epoch())


@pytest.fixture()
def signing_dir(tmp_path, monkeypatch):
    d = tmp_path / "signing"
    monkeypatch.setenv("HYGIE_SIGNING_DIR", str(d))
    for k in ("HYGIE_SIGN_CERT", "HYGIE_SIGN_KEY", "HYGIE_SIGN_ALG"):
        monkeypatch.delenv(k, raising=False)
    return d


def first_frames(path: Path, n: int) -> list[np.ndarray]:
    from hygie.core.media.decode import iter_video_frames

    out = []
    for _, f in iter_video_frames(path):
        out.append(f)
        if len(out) == n:
            break
    return out


def test_payload_survives_chip_errors():
    rng = np.random.default_rng(1)
    soft = (1.0 - 2.0 * P.coded()) + rng.normal(0, 0.9, PL.CODED_BITS)
    assert PL.decode(soft) == P
    assert PL.decode(rng.normal(0, 1, PL.CODED_BITS)) is None  # noise does not pass the CRC
    assert P.synthetic and P.avatar_hex == "0a1b2c3d"


@pytest.mark.parametrize("clip,n", [("grid", 100), ("obama", 60)], ids=["grid_288p", "obama_720p"])
def test_watermark_survives_reencode_scaling_and_crop(tmp_path, clip, n):
    src = need(GRID_HELDOUT) if clip == "grid" else (OBAMA[0] if OBAMA else need(DATA / "obama"))
    frames = first_frames(src, n)
    emb = WM.Embedder()
    marked = [emb.apply(f, P) for f in frames]
    import cv2

    psnr = [cv2.PSNR(a, b) for a, b in zip(frames, marked)]
    assert min(psnr) >= 42.0, min(psnr)
    assert WM.detect_frames(frames).payload is None  # the same frames unmarked: nothing
    fps = 25.0 if clip == "grid" else 29.97
    path = tmp_path / "marked.mp4"
    B.encode(marked, path, fps, crf=20)
    kinds = ["marked", "h264_500k", "crop10"] + (["half"] if clip == "obama" else [])  # 720p -> 360p
    for kind in kinds:
        out = path if kind == "marked" else B.degrade(path, tmp_path / f"{kind}.mp4", kind)
        scan = WM.scan_video(out)
        assert scan.windows and all(d.payload == P for d in scan.windows), (kind, [d.as_dict() for d in scan.windows])


def test_no_false_positives_on_real_footage():
    videos = [need(GRID_HELDOUT), *OBAMA, *sorted((DATA / "grid_speakers").glob("*.mp4"))[:3]]
    n = 0
    for v in videos:
        scan = WM.scan_video(v, max_windows=5)
        n += len(scan.windows)
        assert scan.n_read == 0 and scan.n_sync == 0, (v, [d.as_dict() for d in scan.windows])
    assert n >= 12


def test_live_marks_change_with_the_minute_and_keep_the_input():
    from hygie.core.provenance.live import LiveMarks

    t = [1_800_000_000.0]
    f = np.full((288, 360, 3), 128, np.uint8)
    marks = LiveMarks({"avatar_id": "0a1b2c3d"}, (360, 288), clock=lambda: t[0])
    a = marks(f)
    assert a is not f and np.array_equal(f, np.full_like(f, 128)) and not np.array_equal(a, f)
    start = t[0]
    for _ in range(7):  # the next minute's pattern is built on a worker 20 s ahead of time
        t[0] += 10
        marks(f)
        if marks._worker is not None:
            marks._worker.join(10)
    b = marks(f)
    assert marks.payload_at(t[0]).minutes == marks.payload_at(start).minutes + 1
    assert marks.embedder.ready(360, 288, marks.payload_at(t[0]))
    assert not np.array_equal(a, b)  # the time code moved on


def test_local_signing_chain(signing_dir):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from hygie.core.provenance.keys import load_signing_key

    k = load_signing_key()
    leaf, ca = x509.load_pem_x509_certificates(k.cert_chain)
    assert leaf.issuer == ca.subject and leaf.subject != ca.subject  # not self-signed (C2PA refuses those)
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (signing_dir / "key.pem").stat().st_mode & 0o077 == 0
    assert load_signing_key().cert_chain == k.cert_chain  # made once, then reused


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """`hygie render` of the bundled demo sentence with the default avatar, signed by a private key."""
    from hygie.core.cli.main import main

    d = tmp_path_factory.mktemp("render")
    mp = pytest.MonkeyPatch()
    mp.setenv("HYGIE_SIGNING_DIR", str(d / "signing"))
    try:
        assert main(["render", "-o", str(d / "out.mp4")]) == 0
        yield d / "out.mp4", d / "signing"
    finally:
        mp.undo()


def test_rendered_file_carries_credentials_and_watermark(rendered, monkeypatch, capsys):
    from hygie.core.cli.main import main
    from hygie.core.package.avatar import load_package
    from hygie.core.provenance.consent import avatar_id

    out, signing = rendered
    monkeypatch.setenv("HYGIE_SIGNING_DIR", str(signing))
    capsys.readouterr()
    assert main(["verify", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    c, w = r["credentials"], r["watermark"]
    aid = avatar_id(load_package().meta)
    assert c["state"] == "Trusted" and c["synthetic"] and not c["failures"]
    assert c["generator"].startswith("Hygie Avatar") and c["avatar"]["avatar_id"] == aid
    assert w["windows"] >= 4 and w["windows_read"] == w["windows"]
    (p,) = w["payloads"]
    assert p["avatar_id"] == aid and p["synthetic"] and not p["live"] and p["hex"] == c["avatar"]["watermark"]["hex"]
    assert main(["verify", str(out)]) == 0
    text = capsys.readouterr().out
    assert "trainedAlgorithmicMedia" in text and f"avatar {aid}" in text and "matches" in text


def test_tampered_file_and_manifest_are_detected(rendered, tmp_path, monkeypatch):
    from hygie.core.cli.verify import EXIT_INVALID, verdict, verify

    out, signing = rendered
    monkeypatch.setenv("HYGIE_SIGNING_DIR", str(signing))
    data = out.read_bytes()
    pixels = bytearray(data)
    mdat = data.index(b"mdat")
    pixels[mdat + (len(data) - mdat) // 2] ^= 0x5A  # one byte of the video stream
    (tmp_path / "pixels.mp4").write_bytes(pixels)
    r = verify(tmp_path / "pixels.mp4", max_seconds=2)
    assert r["credentials"]["state"] == "Invalid" and any("mismatch" in f for f in r["credentials"]["failures"])
    assert verdict(r)[0] == EXIT_INVALID
    claim = bytearray(data)
    i = data.index(b"Hygie Avatar signer")  # inside the signed manifest (the certificate's subject)
    claim[i] ^= 0x01
    (tmp_path / "claim.mp4").write_bytes(claim)
    r = verify(tmp_path / "claim.mp4", max_seconds=2)
    assert r["credentials"] is not None and r["credentials"]["state"] == "Invalid"


def test_organisation_certificate_signs_and_is_not_trusted_elsewhere(tmp_path, monkeypatch):
    """An organisation's chain through HYGIE_SIGN_CERT/KEY: valid signature, untrusted on a machine without its CA."""
    from hygie.core.package.avatar import load_package
    from hygie.core.provenance import credentials as C
    from hygie.core.provenance.keys import make_local_chain

    org = tmp_path / "org"
    make_local_chain(org)
    monkeypatch.setenv("HYGIE_SIGN_CERT", str(org / "cert.pem"))
    monkeypatch.setenv("HYGIE_SIGN_KEY", str(org / "key.pem"))
    monkeypatch.setenv("HYGIE_SIGNING_DIR", str(tmp_path / "elsewhere"))
    f = tmp_path / "a.mp4"
    B.encode([np.full((64, 64, 3), 100, np.uint8)] * 5, f, 25.0)
    C.sign_in_place(f, C.manifest("a.mp4", load_package().meta, None))
    c = C.read(f)
    assert c.state == "Valid" and c.synthetic and any("untrusted" in x for x in c.failures)


def test_frames_from_the_live_agent_verify(tmp_path, monkeypatch):
    """The real agent (default avatar, file audio, registered test camera) with the badge on:
    frames saved as PNG are read by `hygie verify FOLDER` as live, synthetic, this avatar."""
    import cv2

    from hygie.core.audio.capture import FileAudioSource
    from hygie.core.live.agent import build_agent, close_all
    from hygie.core.live.config import AgentConfig
    from hygie.core.cli.verify import verify
    from hygie.core.package.avatar import load_package
    from hygie.core.provenance.consent import avatar_id

    av = load_package()
    cfg = AgentConfig(duration=2.6, obs=False, camera_backend=vcam_fixtures.BACKEND, badge=True,
                      badge_position="top-left", camera_kwargs={"keep": lambda f: f.copy()})
    agent, closers = build_agent(cfg, source=FileAudioSource(str(need(GRID_HELDOUT)), loop=False))
    try:
        agent.run()
    finally:
        close_all(closers)
    kept = vcam_fixtures.RecordingBackend.instances[-1].kept
    assert len(kept) >= 60
    for i, f in enumerate(kept[:60]):
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), f)
    r = verify(tmp_path, fps=cfg.fps)
    w = r["watermark"]
    assert r["credentials"] is None and w["windows_read"] == w["windows"] >= 1
    (p,) = w["payloads"]
    assert p["live"] and p["synthetic"] and p["avatar_id"] == avatar_id(av.meta)
    from hygie.core.live.config import badge_config
    from hygie.core.provenance.badge import Badge

    h, wd = kept[0].shape[:2]
    b = Badge(wd, h, badge_config(cfg))
    assert b.x < wd // 4 and b.y < h // 4  # top-left
    plate = kept[0][b.y:b.y + b.h, b.x:b.x + b.w]
    assert (plate.min(axis=2) > 200).sum() > 20 and np.median(plate) < 90  # white text on a dark plate


def test_live_window_across_a_minute_change_still_reads():
    """Live frames change time code each minute: a 2-s window that spans the change mixes two payloads;
    the bits that differ follow one of the two, or else the first or last two thirds decode alone."""
    frames = first_frames(need(GRID_HELDOUT), 50)
    p1 = PL.Payload(0x0A1B2C3D, 1_000_000, live=True)
    p2 = PL.Payload(0x0A1B2C3D, 1_000_001, live=True)
    emb = WM.Embedder()
    emb.set_reference(frames[0])
    mixed = [emb.apply(f, p1 if i < 25 else p2) for i, f in enumerate(frames)]
    d = WM.detect_frames(mixed)
    assert d.payload in (p1, p2)
