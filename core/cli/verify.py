"""`hygie verify`: is this file (or folder of frames) marked as synthetic, and by which avatar?"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from hygie.core.errors import HygieError

log = logging.getLogger(__name__)

EXIT_MARKED, EXIT_NONE, EXIT_INVALID = 0, 3, 4
STATES = {
    "Trusted": "signed and intact; the signer is trusted here (this machine's own key or a trusted CA)",
    "Valid": "signed and intact; the signer's certificate is not on this machine's trust list",
    "Invalid": "the file was changed after signing, or the signature is bad",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="read the Content Credentials and the invisible watermark of a video or frames",
        description="Print what marks PATH as synthetic: its C2PA Content Credentials (who made it, the digital "
                    "source type, the avatar and its consent record, whether the signature holds) and the "
                    "watermark in its pixels (read in windows of 2 s). PATH is a video, an image, or a folder of "
                    "frames saved as images (e.g. captured from the live camera). Exit status: 0 marked, "
                    "3 no mark found, 4 Content Credentials present but invalid (the file was altered).")
    p.add_argument("path", type=Path, help="video, image or folder of frames")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of a folder of frames (default 30)")
    p.add_argument("--max-seconds", type=float, default=120.0,
                   help="read the watermark in at most this much video (default 120; 0 = all)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def verify(path: Path, fps: float = 30.0, max_seconds: float = 120.0) -> dict:
    from hygie.core.provenance import credentials, watermark

    path = Path(path).expanduser()
    if not path.exists():
        raise HygieError(f"{path}: no such file or folder. Check the path.")
    win = watermark.WINDOW_SECONDS
    max_windows = int(max_seconds // win) or None if max_seconds > 0 else None
    creds = None
    if path.is_dir():
        if not watermark.image_files(path):
            raise HygieError(f"{path}: no image files (png, jpg, ...) in this folder; give a video or a folder of frames")
        scan = watermark.scan_folder(path, fps=fps, max_windows=max_windows)
    elif path.suffix.lower() in watermark.IMAGE_SUFFIXES:
        import cv2

        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise HygieError(f"{path}: not readable as an image")
        scan = watermark.scan_frames([img], 1, str(path))
        creds = credentials.read(path)
    else:
        creds = credentials.read(path)
        scan = watermark.scan_video(path, max_windows=max_windows, progress=True)
    return {"path": str(path), "credentials": creds.as_dict() if creds else None, "watermark": scan.as_dict()}


def verdict(r: dict) -> tuple[int, str]:
    c, w = r["credentials"], r["watermark"]
    if c and c["state"] == "Invalid":
        return EXIT_INVALID, "Content Credentials present but INVALID: the file was altered after it was signed"
    marks = []
    if c and c["synthetic"]:
        marks.append("Content Credentials")
    if w["windows_read"]:
        marks.append("watermark")
    if marks:
        return EXIT_MARKED, "marked as synthetic (" + " and ".join(marks) + ")"
    if c:
        return EXIT_NONE, "Content Credentials present, but they do not say the content is AI-generated"
    return EXIT_NONE, "no mark found: no Content Credentials and no Hygie watermark"


def format_report(r: dict) -> str:
    lines = [r["path"]]
    c = r["credentials"]
    if c is None:
        lines.append("Content Credentials: none")
    else:
        lines.append(f"Content Credentials: {c['state']} ({STATES.get(c['state'], '?')})")
        lines.append(f"  made by:      {c['generator']}" + (f", title {c['title']!r}" if c.get("title") else ""))
        lines.append(f"  source type:  {c['digital_source_type'] or 'not stated'}"
                     + (" (AI-generated: trained algorithmic media)" if c["synthetic"] else ""))
        lines.append(f"  signed by:    {c['signer']} (issuer: {c['issuer']})")
        a = c.get("avatar") or {}
        if a:
            from hygie.core.provenance.consent import describe

            lines.append(f"  avatar:       {a.get('avatar_id')}; consent: {describe(a)}")
            if a.get("licence"):
                lines.append(f"  licence/use:  {a['licence']}")
            if a.get("watermark"):
                lines.append(f"  watermark in the manifest: {a['watermark'].get('hex')}")
        for f in c["failures"]:
            lines.append(f"  ! {f}")
    w = r["watermark"]
    if w["payloads"]:
        lines.append(f"Watermark: read in {w['windows_read']} of {w['windows']} windows of {w['window_s']:g} s")
        for p in w["payloads"]:
            kind = "live camera" if p["live"] else "rendered file"
            lines.append(f"  {'synthetic' if p['synthetic'] else 'not flagged synthetic'}, avatar {p['avatar_id']}, "
                         f"{kind}, made {p['time_utc'][:16].replace('T', ' ')} UTC ({p['windows']} windows, payload {p['hex']})")
        in_manifest = ((c or {}).get("avatar") or {}).get("watermark", {}).get("hex")
        if in_manifest:
            same = any(p["hex"] == in_manifest for p in w["payloads"])
            lines.append("  the payload " + ("matches" if same else "does NOT match") + " the one in the Content Credentials")
    elif w["windows_sync_only"]:
        lines.append(f"Watermark: present in {w['windows_sync_only']} of {w['windows']} windows, payload unreadable "
                     "(too degraded)")
    else:
        lines.append(f"Watermark: none found ({w['windows']} windows of {w['window_s']:g} s read)")
    lines.append("Verdict: " + verdict(r)[1])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    r = verify(args.path, fps=args.fps, max_seconds=args.max_seconds)
    code, text = verdict(r)
    if args.json:
        print(json.dumps(dict(r, verdict=text), indent=1))
    else:
        print(format_report(r))
    return code
