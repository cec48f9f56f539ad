"""Enrollment report: one self-contained HTML page with embedded PNG plots."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from hygie.core.provenance.consent import avatar_id as consent_id
from hygie.core.provenance.consent import describe as consent_line
from hygie.core.provenance.consent import problems as consent_problems
from hygie.core.render.jpeg import decode_jpeg_blob


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img_tag(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def write_report(out: Path, meta: dict, track: dict[str, np.ndarray], pca: dict[str, np.ndarray],
                 mouths: dict[str, np.ndarray], srcs: list[tuple[str, np.ndarray]]) -> None:
    """The enrollment report from the arrays enrollment holds in memory (track/pca/mouths.npz contents)."""
    import matplotlib

    matplotlib.use("Agg")
    import cv2
    import matplotlib.pyplot as plt

    t = track["times"]
    vid = track["video"]
    usable = track["usable"]
    sections = []

    # coverage over time (per source video, 1 s bins)
    fig, axes = plt.subplots(len(srcs), 1, figsize=(10, 1.6 * len(srcs)), squeeze=False)
    for vi, (name, _) in enumerate(srcs):
        m = vid == vi
        tt, uu = t[m], usable[m]
        bins = np.arange(0, tt.max() + 1.0, 1.0)
        idx = np.clip(np.digitize(tt, bins) - 1, 0, len(bins) - 1)
        cov = np.bincount(idx, weights=uu, minlength=len(bins)) / np.maximum(np.bincount(idx, minlength=len(bins)), 1)
        ax = axes[vi, 0]
        ax.fill_between(bins, cov, step="post", color="tab:green", alpha=0.7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("usable")
        ax.set_title(f"{name}: face coverage {100 * uu.mean():.1f}% (1 s bins; dips = no face or damaged frames)", fontsize=9)
    axes[-1, 0].set_xlabel("time (s)")
    sections.append(("Face coverage over time", _img_tag(_png(fig), "coverage")))

    # PCA curve
    curve = pca["variance_ratio_curve"]
    k = meta["pca"]["n_components"]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(np.arange(1, len(curve) + 1), 100 * curve, "o-", ms=3)
    ax.axhline(100 * meta["pca"]["variance_target"], color="grey", ls="--", lw=1)
    ax.axvline(k, color="tab:red", lw=1)
    ax.set_xlim(0.5, min(len(curve), 20) + 0.5)
    ax.set_xlabel("PCA components")
    ax.set_ylabel("mouth-shape variance explained (%)")
    ax.set_title(f"{k} components keep {100 * curve[k - 1]:.1f}%", fontsize=9)
    sections.append(("Mouth-shape PCA", _img_tag(_png(fig), "pca")))

    # opening under the waveform (first 30 s of the first video)
    name, audio = srcs[0]
    sr = meta["audio"]["sample_rate"]
    T = min(30.0, len(audio) / sr)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 3.6), sharex=True)
    x = audio[: int(T * sr)]
    a1.plot(np.arange(len(x)) / sr, x, lw=0.3, color="tab:blue")
    a1.set_ylabel("audio")
    m = (vid == 0) & (t <= T)
    a2.plot(t[m], np.where(usable[m], track["opening"][m], np.nan), color="tab:red", lw=1)
    a2.set_ylabel("mouth opening (IOD)")
    a2.set_xlabel("time (s)")
    a1.set_title(f"{name}: the mouth should open when there is sound", fontsize=9)
    sections.append(("Mouth opening under the audio", _img_tag(_png(fig), "opening")))

    # strip of crops from closed to wide open
    op = mouths["opening"]
    order = np.argsort(op)
    picks = order[np.linspace(0, len(order) - 1, 10).round().astype(int)]
    tiles = [decode_jpeg_blob(mouths["jpeg"], mouths["offsets"], int(i)) for i in picks]
    h = max(tl.shape[0] for tl in tiles)
    strip = np.concatenate([cv2.copyMakeBorder(tl, 0, h - tl.shape[0], 0, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)) for tl in tiles], axis=1)
    fig, ax = plt.subplots(figsize=(10, 1.6))
    ax.imshow(strip[:, :, ::-1])
    ax.axis("off")
    ax.set_title("mouth database: closed → wide open (real crops)", fontsize=9)
    sections.append(("Mouth crops", _img_tag(_png(fig), "mouths")))

    light = meta.get("light")
    if light and "skin_lab" in mouths:
        sections.append(("Light and colour of each recording", _light_section(light, mouths, track)))

    rows = [
        ("Sources", ", ".join(f"{s['name']} ({s['frames']} frames, {s['duration_s']:.0f} s)" for s in meta["sources"])),
        ("Frame size / fps", f"{meta['frame_size'][0]}×{meta['frame_size'][1]} @ {meta['fps']:.2f}"),
        ("Usable frames", f"{meta['n_usable']} of {meta['n_frames']} ({100 * meta['coverage']:.2f}%)"),
        ("Dropped", "; ".join(f"{s['name']}: no face {s['no_face']}, damaged {s['damaged']}, several faces {s['multi_face']}" for s in meta["sources"])),
        ("PCA", f"{k} components, {100 * meta['pca']['variance_explained']:.1f}% variance, reconstruction error {meta['pca']['reconstruction_lmd']:.4f} IOD"),
        ("Mouth database", f"{meta['crop']['n_mouths']} crops of {meta['crop']['size'][0]}×{meta['crop']['size'][1]} px"),
        ("Idle loop", f"{meta['template']['frames']} frames, ping-pong"),
        ("Avatar id", consent_id(meta)),
        ("Consent", consent_line(meta)),
        ("Licence / use", meta["licence"]),
    ]
    warn = "".join(f"<p style='color:#a00'><b>Consent:</b> {html.escape(m)}</p>" for m in consent_problems(meta))
    table = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows)
    body = "".join(f"<h2>{html.escape(h2)}</h2>{c}" for h2, c in sections)
    verdict = "good" if meta["coverage"] >= 0.95 and meta["n_usable"] / meta["fps"] >= 180 else "usable, see warnings"
    if light and light.get("warnings"):
        verdict = "usable, see warnings"
    out.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Hygie Avatar enrollment report</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "th{text-align:left;padding-right:1em;vertical-align:top}img{max-width:100%}</style></head><body>"
        f"<h1>Enrollment report</h1><p>Recording quality: <b>{verdict}</b></p>{warn}<table>{table}</table>{body}</body></html>"
    )


def _light_section(light: dict, mouths: dict, track: dict) -> str:
    """Skin brightness over time and skin colour per recording (from the database crops), with warnings."""
    import matplotlib.pyplot as plt

    lab = mouths["skin_lab"]
    frame = mouths["frame"]
    vid, t = track["video"][frame], track["times"][frame]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3), gridspec_kw={"width_ratios": [2, 1]})
    for k, s in enumerate(light["sources"]):
        m = (vid == k) & np.isfinite(lab).all(1)
        a1.plot(t[m], lab[m, 0], ".", ms=2, label=s["name"])
        a2.plot(lab[m, 2], lab[m, 1], ".", ms=2, alpha=0.5)
    a1.set_xlabel("time in its recording (s)")
    a1.set_ylabel("skin brightness L*")
    a1.legend(fontsize=7, markerscale=4)
    a2.set_xlabel("b* (blue – yellow)")
    a2.set_ylabel("a* (green – red)")
    a1.set_title("skin around the mouth, every mouth in the database", fontsize=9)
    a2.set_title("skin colour per recording", fontsize=9)
    rows = "".join(
        f"<tr><td>{html.escape(s['name'])}</td><td>{s.get('L', float('nan')):.1f}</td><td>{s.get('a', float('nan')):.1f}</td>"
        f"<td>{s.get('b', float('nan')):.1f}</td><td>{s.get('L_p5', float('nan')):.1f}–{s.get('L_p95', float('nan')):.1f}</td></tr>"
        for s in light["sources"])
    table = ("<table><tr><th>recording</th><th>L*</th><th>a*</th><th>b*</th><th>L* 5–95 %</th></tr>"
             f"{rows}</table>")
    warn = "".join(f"<p><b>Warning:</b> {html.escape(w)}</p>" for w in light.get("warnings", []))
    note = ("<p>Each pasted mouth is relit with the idle frame's own light (a smooth per-channel ratio "
            "measured on the skin around the mouth), and mouths from recordings lit like the idle loop "
            "are preferred; lip colour and contrast of another recording cannot be relit.</p>")
    return _img_tag(_png(fig), "light") + table + warn + (note if warn else "")
