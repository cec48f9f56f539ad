"""C2PA Content Credentials on the files Hygie writes, and reading them back (c2pa-python).

The manifest says: created by Hygie Avatar (name, version) as *trained algorithmic media*
(IPTC digital source type), which avatar (its id, its consent record, its licence note) and the
watermark payload in the pixels. It is signed with keys.load_signing_key() and embedded in the
mp4 (a BMFF hash binds it to every byte of the file; editing the file breaks it).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hygie.core.errors import HygieError
from hygie.core.live.camera_identity import CAMERA_NAME as TOOL  # the product's name, which the camera carries

log = logging.getLogger(__name__)

SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
AVATAR_ASSERTION = "org.hygie.avatar"
MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg", ".png": "image/png"}


def tool_version() -> str:
    try:
        from importlib.metadata import version

        return version("hygie-avatar")
    except Exception:
        return "0+unknown"


def manifest(title: str, avatar_meta: dict[str, Any], watermark: dict[str, Any] | None,
             what: str = "lip-synced avatar video rendered from speech audio") -> dict[str, Any]:
    from hygie.core.provenance.consent import avatar_id

    agent = {"name": TOOL, "version": tool_version()}
    avatar = {"avatar_id": avatar_id(avatar_meta), "consent": avatar_meta.get("consent"),
              "licence": avatar_meta.get("licence"),
              "sources": [{"name": s.get("name"), "sha256": s.get("sha256")} for s in avatar_meta.get("sources", [])]}
    if watermark:
        avatar["watermark"] = watermark
    return {
        "claim_generator_info": [agent],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [{
                "action": "c2pa.created", "digitalSourceType": SOURCE_TYPE, "softwareAgent": agent,
                "description": what}]}},
            {"label": AVATAR_ASSERTION, "data": avatar},
        ],
    }


def sign_file(src: Path, dst: Path, manifest_def: dict[str, Any], mime: str | None = None) -> None:
    """Write `src` with the signed manifest embedded to `dst` (a different path); the format comes
    from `mime` or from dst's suffix."""
    try:
        import c2pa
    except ImportError as e:
        raise HygieError("Content Credentials need c2pa-python: pip install c2pa-python (then render again)") from e
    from hygie.core.provenance.keys import load_signing_key

    mime = mime or MIME.get(Path(dst).suffix.lower())
    if mime is None:
        raise HygieError(f"{dst}: Content Credentials are written into mp4, mov, jpeg and png files only")
    key = load_signing_key()
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(key.alg, key.cert_chain, key.key, None))
        with c2pa.Builder(json.dumps(manifest_def)) as b, open(src, "rb") as s, open(dst, "w+b") as d:
            b.sign(signer, mime, s, d)
        signer.close()
    except c2pa.C2paError as e:
        where = key.folder or "HYGIE_SIGN_CERT/HYGIE_SIGN_KEY"
        raise HygieError(f"signing the Content Credentials failed ({e}); check the certificate and key in {where} "
                         "(delete the folder to make a new local key)") from e


def sign_in_place(path: Path, manifest_def: dict[str, Any], mime: str = "video/mp4") -> None:
    """Sign `path` (e.g. a temporary file before its final rename): written beside it, then renamed."""
    path = Path(path)
    out = path.with_name(path.name + ".signed")
    try:
        sign_file(path, out, manifest_def, mime)
        os.replace(out, path)
    finally:
        out.unlink(missing_ok=True)


@dataclass
class Credentials:
    """What a file's Content Credentials say."""

    state: str  # "Trusted" (signed with this machine's local key or a trusted CA), "Valid", "Invalid"
    title: str | None
    generator: str
    source_type: str | None
    signer: str
    issuer: str
    avatar: dict[str, Any] | None
    failures: list[str] = field(default_factory=list)

    @property
    def synthetic(self) -> bool:
        return bool(self.source_type and "trainedAlgorithmicMedia" in self.source_type)

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "title": self.title, "generator": self.generator,
                "digital_source_type": self.source_type, "synthetic": self.synthetic, "signer": self.signer,
                "issuer": self.issuer, "avatar": self.avatar, "failures": self.failures}


def read(path: Path) -> Credentials | None:
    """The file's active manifest, validated (this machine's local CA counts as trusted); None if none."""
    try:
        import c2pa
    except ImportError as e:
        raise HygieError("reading Content Credentials needs c2pa-python: pip install c2pa-python") from e
    from hygie.core.provenance.keys import local_trust_anchors

    path = Path(path)
    mime = MIME.get(path.suffix.lower())
    if mime is None:
        return None
    settings: dict[str, Any] = {"verify": {"verify_trust": True}}
    anchors = local_trust_anchors()
    if anchors:
        settings["trust"] = {"trust_anchors": anchors.decode()}
    try:
        with open(path, "rb") as f:
            ctx = c2pa.Context.from_dict(settings)
            reader = c2pa.Reader(mime, f, context=ctx)
            with reader:
                state = reader.get_validation_state() or "Unknown"
                results = reader.get_validation_results() or {}
                am = reader.get_active_manifest() or {}
    except c2pa.C2paError as e:
        msg = str(e)
        if "ManifestNotFound" in type(e).__name__ or "no JUMBF" in msg or "not found" in msg.lower():
            return None
        return Credentials("Invalid", None, "?", None, "?", "?", None, [f"unreadable manifest: {msg}"])
    actions = [a for asr in am.get("assertions", []) if asr.get("label", "").startswith("c2pa.actions")
               for a in asr.get("data", {}).get("actions", [])]
    created = next((a for a in actions if a.get("action") == "c2pa.created"), {})
    gen = am.get("claim_generator_info") or [{}]
    avatar = next((a.get("data") for a in am.get("assertions", []) if a.get("label") == AVATAR_ASSERTION), None)
    sig = am.get("signature_info", {})
    failures = [f"{x.get('code')}: {x.get('explanation')}"
                for x in results.get("activeManifest", {}).get("failure", [])]
    return Credentials(state, am.get("title"), " ".join(str(gen[0].get(k, "")) for k in ("name", "version")).strip(),
                       created.get("digitalSourceType"), sig.get("common_name", "?"), sig.get("issuer", "?"),
                       avatar, failures)
