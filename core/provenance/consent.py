"""Who is enrolled, and that they agreed: the consent record kept in avatar.json, and the avatar id.

A record names the person, says how the agreement was given (the --consent flag, a confirmation
typed at a terminal, or a licence for corpus footage), when, and the sha256 of every source
video it covers. avatar.json carries a digest of its own content (package.schema), so the
record cannot be edited without the package refusing to load.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)

STATEMENT = ("{name} is the person shown in the source videos, or is entitled to speak for them, and agrees "
             "that Hygie Avatar makes an avatar of them that renders them saying things they did not say. "
             "Everything it makes is marked as synthetic.")
METHODS = ("--consent flag", "interactive confirmation", "licence")


def derive_avatar_id(source_hashes: Iterable[str]) -> str:
    """8 hex digits (the 32 bits the watermark carries) from the source videos' sha256."""
    h = hashlib.sha256(("hygie-avatar-id:" + ",".join(sorted(source_hashes))).encode())
    return h.hexdigest()[:8]


def avatar_id(meta: dict[str, Any]) -> str:
    """The package's id: avatar.json "avatar_id", or (older packages) derived from its sources."""
    aid = meta.get("avatar_id")
    if isinstance(aid, str) and len(aid) == 8:
        return aid
    return derive_avatar_id(s.get("sha256", "") for s in meta.get("sources", []))


def record(name: str, method: str, sources: list[dict[str, Any]], licence: str | None = None,
           when: _dt.datetime | None = None) -> dict[str, Any]:
    """A consent record for `sources` (dicts with "name" and "sha256")."""
    from hygie.core.errors import HygieError

    name = " ".join(str(name).split())
    if len(name) < 2:
        raise HygieError("--consent needs the full name of the person in the video, e.g. --consent \"Ada Lovelace\"")
    if method not in METHODS:
        raise ValueError(method)
    rec = {
        "name": name,
        "method": method,
        "date": (when or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds"),
        "statement": licence if method == "licence" and licence else STATEMENT.format(name=name),
        "sources": [{"name": s["name"], "sha256": s["sha256"]} for s in sources],
    }
    if licence:
        rec["licence"] = licence
    return rec


def problems(meta: dict[str, Any]) -> list[str]:
    """What is wrong with a package's consent record (empty: fine)."""
    rec = meta.get("consent")
    if not isinstance(rec, dict):
        return ["no consent record: use this avatar only with the consent of the person it shows, "
                "or enroll again with --consent \"Full Name\""]
    out = []
    for k in ("name", "method", "date", "sources"):
        if not rec.get(k):
            out.append(f"the consent record has no {k}")
    covered = {s.get("sha256") for s in rec.get("sources", [])}
    used = {s.get("sha256") for s in meta.get("sources", [])}
    if used - covered:
        out.append("the consent record does not cover all the source videos of this avatar")
    return out


def describe(meta: dict[str, Any]) -> str:
    """One line for reports, `hygie verify` and Content Credentials."""
    rec = meta.get("consent")
    if not isinstance(rec, dict):
        return "none recorded"
    how = {"--consent flag": "given with --consent", "interactive confirmation": "confirmed at a terminal",
           "licence": "licensed footage"}.get(rec.get("method"), rec.get("method", "?"))
    n = len(rec.get("sources", []))
    return f"{rec.get('name', '?')} ({how}, {rec.get('date', '?')[:10]}, {n} source video{'s' * (n != 1)})"


def ask(sources: list[str], read: Callable[[str], str] = input) -> str | None:
    """Interactive confirmation at a terminal: the full name, then an explicit 'yes'. None if declined."""
    print("Hygie Avatar makes a real person appear to say things they never said. Enroll only yourself, "
          "or someone who agreed to it.")
    print("Videos: " + ", ".join(sources))
    name = read("Full name of the person in these videos: ").strip()
    if not name:
        return None
    answer = read(f"Does {name} agree to be enrolled as an avatar? Type 'yes' to confirm: ").strip().lower()
    return name if answer == "yes" else None
