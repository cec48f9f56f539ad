"""Renderer quality against the truth: render a held-out video's mouth and compare with the real video.

No torch: numpy, OpenCV, MediaPipe and (for driver="model") onnxruntime through the lip model.

Figures (lip distances are mean per-point Euclidean distances between 40 canonical lip
points, in inter-ocular units, all under the avatar's own 3-D alignment):
- fidelity: MediaPipe re-detects the lips on each rendered frame; distance to the lips
  the renderer was asked to draw (does the mouth really have the requested shape?);
- sharpness: variance of the Laplacian inside the mouth box, rendered / real;
- stability: mean absolute frame-to-frame difference inside the mouth box, rendered / real;
- seam: SSIM between the rendered frame and its template frame in a ring just outside
  the blend mask (alpha < 0.5, within a few pixels of it);
- LMD: re-detected rendered lips vs the real held-out lips, beside the driver's own
  request vs the real lips (the lip model's raw prediction; ~0 for true landmarks)
  and the mean-mouth baseline.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hygie.core.face import geometry as G
from hygie.core.face.canonical import frame_lips

log = logging.getLogger(__name__)

TARGETS = {  # name: (comparison, threshold)
    "fidelity": ("<=", 0.03),
    "sharpness_ratio": (">=", 0.9),
    "stability_ratio": ("<=", 1.2),
    "seam_ssim": (">=", 0.95),
}


@dataclass
class FrameStats:
    sharp: float  # Laplacian variance in the mouth box
    diff: float  # mean abs difference to the previous frame in the mouth box (NaN for the first)


def mouth_box(points: np.ndarray, shape: tuple[int, int], margin: float = 0.25) -> tuple[int, int, int, int]:
    """Integer box (x0, y0, x1, y1) around lip points, widened by `margin` of its size."""
    lo, hi = points.min(0), points.max(0)
    pad = (hi - lo) * margin
    x0, y0 = np.floor(lo - pad).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    H, W = shape
    return max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)


def laplacian_var(grey: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map of two grey uint8 images (Gaussian window, sigma 1.5, as Wang et al. 2004)."""
    import cv2

    a = a.astype(np.float64)
    b = b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (7, 7), 1.5)
    ma, mb = blur(a), blur(b)
    va = blur(a * a) - ma * ma
    vb = blur(b * b) - mb * mb
    cov = blur(a * b) - ma * mb
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))


def lip_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame mean per-point distance between lip arrays (..., 40, 2); NaN where either is missing."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1).mean(-1)


class _Detector:
    """FaceMesh in video mode -> canonical lips under the avatar's alignment."""

    def __init__(self, reference: np.ndarray):
        from hygie.core.face.tracker import FaceTracker

        self.tr = FaceTracker()
        self.ref = reference

    def lips(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        r = self.tr.process(frame)
        if r.landmarks is None:
            return np.full((len(G.LIPS), 2), np.nan), None
        return frame_lips(r.landmarks, self.ref), r.landmarks

    def close(self) -> None:
        self.tr.close()


def _grey(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _box_stats(grey: np.ndarray, prev: np.ndarray | None, box: tuple[int, int, int, int]) -> FrameStats:
    x0, y0, x1, y1 = box
    g = grey[y0:y1, x0:x1]
    d = float(np.abs(g.astype(np.int16) - prev[y0:y1, x0:x1].astype(np.int16)).mean()) if prev is not None else np.nan
    return FrameStats(laplacian_var(g), d)


def _strip(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]], zoom: float = 2.0) -> np.ndarray:
    """Columns of (real over rendered) lower-face crops, each centred on its own mouth, labelled."""
    import cv2

    cols = []
    for real, rend, real_pts, rend_pts in pairs:
        half = max(24, int(1.6 * np.ptp(rend_pts[:, 0])))
        tiles = []
        for img, pts in ((real, real_pts if real_pts is not None else rend_pts), (rend, rend_pts)):
            c = pts.mean(0)
            box = (int(c[0] - half), int(c[1] - 0.9 * half), int(c[0] + half), int(c[1] + 0.9 * half))
            H, W = img.shape[:2]
            x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], W), min(box[3], H)
            t = cv2.resize(img[y0:y1, x0:x1], (int(2 * half * zoom), int(1.8 * half * zoom)), interpolation=cv2.INTER_CUBIC)
            tiles.append(t)
        cols.append(np.vstack(tiles))
    h = min(c.shape[0] for c in cols)
    strip = np.hstack([c[:h] for c in cols])
    for label, y in (("real", 18), ("rendered", h // 2 + 18)):
        cv2.putText(strip, label, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(strip, label, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def evaluate_render(avatar, video: str | Path, out_dir: str | Path, driver: str = "landmarks",
                    max_frames: int | None = None, strip_frames: int = 8, quiet: bool = False) -> dict:
    """Render `video`'s mouth (its true landmarks, or its audio through the lip model) and compare.

    Returns the figures (also saved as render_quality.json) and writes render_strip.png in out_dir.
    """
    import cv2
    from tqdm import tqdm

    from hygie.core.render.drive import coeffs_from_audio
    from hygie.core.errors import HygieError
    from hygie.core.media.audio_file import load_audio
    from hygie.core.media.decode import iter_video_frames
    from hygie.core.media.probe import probe_video
    from hygie.core.render.renderer import Renderer

    if driver not in ("landmarks", "model"):
        raise ValueError("driver must be 'landmarks' or 'model'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = probe_video(video)
    ref = avatar.track["reference"]
    n_max = max_frames or 10 ** 9

    # pass 1: the real video: true lips, mouth-box statistics, a few frames for the strip
    det = _Detector(ref)
    real_lips, real_stats, real_pts = [], [], []
    prev = None
    with tqdm(total=min(info.n_frames, n_max), desc="real frames", unit="frame", disable=quiet) as bar:
        for k, (_, frame) in enumerate(iter_video_frames(video)):
            if k >= n_max:
                break
            lips, lm = det.lips(frame)
            real_lips.append(lips)
            g = _grey(frame)
            if lm is not None:
                pts = lm[G.LIPS, :2]
                real_stats.append(_box_stats(g, prev, mouth_box(pts, g.shape)))
                real_pts.append(pts)
            else:
                real_stats.append(FrameStats(np.nan, np.nan))
                real_pts.append(None)
            prev = g
            bar.update(1)
    det.close()
    real_lips = np.array(real_lips, np.float64)
    n = len(real_lips)
    if n < 2 or not np.isfinite(real_lips[:, 0, 0]).any():
        raise HygieError(f"{video}: no face found; evaluate on a video of the avatar's person.")

    # what the renderer is asked to draw
    if driver == "landmarks":
        requested = real_lips.copy()
    else:
        audio = load_audio(video, avatar.mel_config.sample_rate)
        coeffs = coeffs_from_audio(avatar, audio, info.fps, n)
        if coeffs is None:
            raise HygieError(f"{video}: no speech in its audio; the model driver needs speech.")
        requested = avatar.coeffs_to_lips(coeffs).astype(np.float64)

    # choose strip frames: spread over the clip, preferring open mouths
    op = np.nan_to_num(G.mouth_opening(real_lips), nan=-1)
    seg = np.array_split(np.arange(n), strip_frames)
    strip_idx = {int(s[np.argmax(op[s])]) for s in seg if len(s)}

    # pass 2: render, re-detect, measure
    renderer = Renderer(avatar)
    det = _Detector(ref)
    redetected = np.full_like(real_lips, np.nan)
    rend_stats: list[FrameStats] = []
    seam = []
    pairs_rend: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    prev = None
    ring_px = max(3, int(round(renderer.feather_px)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
    try:
        for i in tqdm(range(n), desc=f"render ({driver})", unit="frame", disable=quiet):
            frame = renderer.render_lips(requested[i], i) if np.isfinite(requested[i]).all() else renderer.render(None, i)
            last = renderer.last
            redetected[i], _ = det.lips(frame)
            g = _grey(frame)
            dst_lips = last["dst"][: len(G.LIPS)]
            rend_stats.append(_box_stats(g, prev, mouth_box(dst_lips, g.shape)))
            prev = g
            if last["alpha"] is not None:
                a = last["alpha"]
                x0, y0 = last["x0"], last["y0"]
                hard = np.zeros(g.shape, np.uint8)
                hard[y0:y0 + a.shape[0], x0:x0 + a.shape[1]] = (a >= 128).astype(np.uint8)
                ring = (cv2.dilate(hard, kernel) > 0) & (hard == 0)
                tpl = _grey(renderer.idle_frame(i))
                ys, xs = np.nonzero(ring)
                if len(ys):
                    bx0, by0, bx1, by1 = xs.min() - 4, ys.min() - 4, xs.max() + 5, ys.max() + 5
                    bx0, by0 = max(bx0, 0), max(by0, 0)
                    m = ssim_map(g[by0:by1, bx0:bx1], tpl[by0:by1, bx0:bx1])
                    seam.append(float(m[ring[by0:by1, bx0:bx1]].mean()))
            if i in strip_idx:
                pairs_rend[i] = (frame.copy(), dst_lips.copy())
    finally:
        det.close()
        renderer.close()

    # strip: decode the chosen real frames again (cheap, keeps memory flat)
    pairs = []
    for k, (_, frame) in enumerate(iter_video_frames(video)):
        if k >= n:
            break
        if k in pairs_rend:
            rend, pts = pairs_rend[k]
            pairs.append((frame, rend, real_pts[k], pts))
    strip_path = out_dir / "render_strip.png"
    if pairs:
        cv2.imwrite(str(strip_path), _strip(pairs))

    def ratio(key: str) -> float:
        r = np.array([getattr(s, key) for s in rend_stats])
        q = np.array([getattr(s, key) for s in real_stats])
        return float(np.nanmean(r) / np.nanmean(q))

    mean_mouth = avatar.coeffs_to_lips(np.zeros(avatar.pca["components"].shape[0]))
    fid = lip_distance(redetected, requested)
    res = {
        "video": str(video),
        "driver": driver,
        "frames": int(n),
        "frames_redetected": int(np.isfinite(fid).sum()),
        "fidelity": float(np.nanmean(fid)),
        "fidelity_median": float(np.nanmedian(fid)),
        "sharpness_ratio": ratio("sharp"),
        "stability_ratio": ratio("diff"),
        "seam_ssim": float(np.mean(seam)) if seam else float("nan"),
        "lmd_rendered_vs_real": float(np.nanmean(lip_distance(redetected, real_lips))),
        "lmd_request_vs_real": float(np.nanmean(lip_distance(requested, real_lips))),
        "lmd_mean_mouth_vs_real": float(np.nanmean(lip_distance(mean_mouth[None], real_lips))),
        "opening_r_rendered_vs_real": _corr(G.mouth_opening(redetected), G.mouth_opening(real_lips)),
        "strip": str(strip_path) if pairs else None,
    }
    res["pass"] = {k: _ok(res[k], *TARGETS[k]) for k in TARGETS}
    (out_dir / "render_quality.json").write_text(json.dumps(res, indent=1))
    if not quiet:
        print(format_table(res))
    return res


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def _ok(v: float, cmp: str, thr: float) -> bool:
    return bool(np.isfinite(v) and (v <= thr if cmp == "<=" else v >= thr))


def format_table(res: dict) -> str:
    rows = [
        ("renderer fidelity (re-detected vs requested, IOD)", "fidelity"),
        ("sharpness, rendered / real (Laplacian var)", "sharpness_ratio"),
        ("stability, rendered / real (frame diff)", "stability_ratio"),
        ("seam SSIM (ring outside the blend mask)", "seam_ssim"),
        ("LMD rendered vs real (IOD)", "lmd_rendered_vs_real"),
        (f"LMD {'lip model raw' if res['driver'] == 'model' else 'requested (true)'} vs real (IOD)", "lmd_request_vs_real"),
        ("LMD mean mouth vs real (IOD, baseline)", "lmd_mean_mouth_vs_real"),
        ("mouth-opening r, rendered vs real", "opening_r_rendered_vs_real"),
    ]
    lines = [f"render quality: {Path(res['video']).name}, driver={res['driver']}, {res['frames']} frames "
             f"({res['frames_redetected']} re-detected)",
             f"{'metric':52s} {'value':>8s}  {'target':>8s}  ok"]
    for label, k in rows:
        t = TARGETS.get(k)
        tgt = f"{t[0]} {t[1]:g}" if t else ""
        ok = ("yes" if res["pass"][k] else "NO") if t else ""
        lines.append(f"{label:52s} {res[k]:8.4f}  {tgt:>8s}  {ok}")
    if res.get("strip"):
        lines.append(f"strip image: {res['strip']}")
    return "\n".join(lines)
