"""Renderer quality against the truth: render a held-out video's mouth and compare with the real video.

No torch: numpy, OpenCV, MediaPipe and (for driver="model") onnxruntime through the lip model.

Figures (lip distances are mean per-point Euclidean distances between 40 canonical lip
points, in inter-ocular units, all under the avatar's own 3-D alignment):
- fidelity: MediaPipe re-detects the lips on each rendered frame; distance to the lips
  the renderer was asked to draw (does the mouth really have the requested shape?);
- sharpness: variance of the Laplacian inside the mouth box, rendered / real;
- stability: mean absolute frame-to-frame difference inside the mouth box, rendered / real;
  it includes the head motion of the idle loop and of the real video, which differ between
  recordings; `stability_face_ratio` measures the same in mouth crops aligned on the eyes and
  nose (FaceAligned), at the avatar's own crop resolution, low-passed at 0.015 IOD: the mouth
  moving, flickering or swimming against the face; `*_rel_ratio` divide each box's change by
  its mean brightness (sharpness by its square), so that an idle loop filmed brighter or darker
  than the real video does not count (the perturbed-light suite compares these);
- seam: SSIM between the rendered frame and its template frame in a ring just outside
  the blend mask (alpha < 0.5, within a few pixels of it);
- colour seam (ΔE, CIE76 in Lab): the mean colour of the band just inside the blend mask's
  0.5 contour against the band just outside it, per angular sector around the mouth (a dark
  smudge under the lower lip shows in one sector, not in the mean), averaged; the same
  bands are drawn from the real video's own landmarks, which gives the skin's natural
  gradient there: the excess over it is what the blend adds;
- sharpness in the written file: the rendered frames go through `hygie render`'s encoder
  (core/media.py) and are decoded again; the same mouth boxes are measured;
- all measures at the video's native size (HD stays HD); the full-resolution strip shows
  the lower face 1:1, real above rendered.
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
from hygie.core.face.canonical import align_frames, frame_lips

log = logging.getLogger(__name__)

TARGETS = {  # name: (comparison, threshold)
    "fidelity": ("<=", 0.03),
    "sharpness_ratio": (">=", 0.9),
    "stability_ratio": ("<=", 1.2),
    "seam_ssim": (">=", 0.95),
    "seam_de_excess": ("<=", 2.0),
    "sharpness_mp4_ratio": (">=", 0.95),
}
SEAM_SECTORS = 8


@dataclass
class FrameStats:
    sharp: float  # Laplacian variance in the mouth box
    diff: float  # mean abs difference to the previous frame in the mouth box (NaN for the first)
    face_diff: float = float("nan")  # the same in face-aligned mouth crops (head motion taken out)
    # sharpness and change relative to the box's mean brightness: an idle loop filmed brighter or
    # darker than the real video (another exposure, another day) scales both; these do not move
    sharp_rel: float = float("nan")
    diff_rel: float = float("nan")


class FaceAligned:
    """Mouth crops aligned on the rigid face points (eyes, nose), at the avatar's crop size (native HD).

    Frame-to-frame change of these crops is the mouth moving against the face (and any flicker or
    swimming of a pasted mouth), without the head motion that the idle loop and the real video
    each have in their own measure. The crops are low-passed (Gaussian of LOWPASS_IOD): a
    recording that is sharper or softer than the real one (another camera, another day) would
    otherwise count its pore-level detail as change.
    """

    LOWPASS_IOD = 0.015

    def __init__(self, avatar):
        c = avatar.meta["crop"]
        self.origin = np.asarray(c["origin"], np.float64)
        self.px = float(c["px_per_iod"])
        self.size = (int(c["size"][0]), int(c["size"][1]))
        self.ref = avatar.track["reference"]
        self.prev: np.ndarray | None = None

    def diff(self, grey: np.ndarray, landmarks: np.ndarray | None) -> float:
        import cv2

        if landmarks is None:
            self.prev = None
            return float("nan")
        lm = np.asarray(landmarks, np.float64)
        al = align_frames(lm[None], self.ref, rows=np.array([0]), dtype=np.float64)
        rig = lm[G.RIGID]
        dst = (al.canon[0, G.RIGID, :2] - self.origin) * self.px
        M = G.similarity_2d(rig[:, :2], dst)
        g = cv2.warpAffine(grey, M, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        g = cv2.GaussianBlur(g, (0, 0), self.LOWPASS_IOD * self.px)
        d = float(np.abs(g.astype(np.int16) - self.prev.astype(np.int16)).mean()) if self.prev is not None else float("nan")
        self.prev = g
        return d


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


def ring_masks(points: np.ndarray, lips: np.ndarray, feather_px: float, box: tuple[int, int, int, int],
               ring_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(inside, outside) bands of the blend mask drawn from mouth-region points, in `box` pixels.

    The mask is the renderer's own (blend.crop_alpha of the 93 points); the lips are left out of
    the inner band, so it holds only pasted skin.
    """
    import cv2

    from hygie.core.render.blend import crop_alpha

    x0, y0, x1, y1 = box
    local = np.asarray(points, np.float32) - np.array([x0, y0], np.float32)
    hard = (crop_alpha(local, (x1 - x0, y1 - y0), feather_px) >= 128).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
    inside = hard.astype(bool) & (cv2.erode(hard, k) == 0)
    lip_poly = np.zeros_like(hard)
    cv2.fillPoly(lip_poly, [np.rint(np.asarray(lips, np.float32)[:20] - [x0, y0]).astype(np.int32)], 1)
    inside &= cv2.dilate(lip_poly, k) == 0
    outside = (cv2.dilate(hard, k) > 0) & ~hard.astype(bool)
    return inside, outside


def seam_delta_e(frame: np.ndarray, points: np.ndarray, lips: np.ndarray, feather_px: float,
                 sectors: int = SEAM_SECTORS) -> float:
    """Mean over angular sectors of ΔE76 (Lab) between the bands just inside and outside the blend mask."""
    import cv2

    H, W = frame.shape[:2]
    ring_px = max(3, int(round(feather_px)))
    pad = 2 * ring_px + 2
    lo = np.floor(points.min(0)).astype(int) - pad
    hi = np.ceil(points.max(0)).astype(int) + pad
    box = (max(lo[0], 0), max(lo[1], 0), min(hi[0], W), min(hi[1], H))
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        return float("nan")
    inside, outside = ring_masks(points, lips, feather_px, box, ring_px)
    x0, y0, x1, y1 = box
    lab = cv2.cvtColor(frame[y0:y1, x0:x1].astype(np.float32) * (1.0 / 255.0), cv2.COLOR_BGR2Lab)
    c = np.asarray(lips, np.float32)[:20].mean(0) - [x0, y0]
    yy, xx = np.mgrid[0:y1 - y0, 0:x1 - x0]
    sec = ((np.arctan2(yy - c[1], xx - c[0]) + np.pi) / (2 * np.pi) * sectors).astype(int) % sectors
    des = []
    for k in range(sectors):
        a, b = inside & (sec == k), outside & (sec == k)
        if a.sum() >= 8 and b.sum() >= 8:
            des.append(float(np.linalg.norm(lab[a].mean(0) - lab[b].mean(0))))
    return float(np.mean(des)) if des else float("nan")


def lip_colour(frame: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Mean Lab colour (3,) of the lip flesh: inside the outer lip contour, outside the inner one."""
    import cv2

    lips = np.asarray(lips, np.float32)
    x0, y0 = np.maximum(np.floor(lips.min(0)).astype(int) - 1, 0)
    x1, y1 = np.ceil(lips.max(0)).astype(int) + 2
    sub = frame[y0:y1, x0:x1]
    if sub.size == 0:
        return np.full(3, np.nan)
    m = np.zeros(sub.shape[:2], np.uint8)
    cv2.fillPoly(m, [np.rint(lips[:20] - [x0, y0]).astype(np.int32)], 1)
    cv2.fillPoly(m, [np.rint(lips[20:40] - [x0, y0]).astype(np.int32)], 0)
    if m.sum() < 8:
        return np.full(3, np.nan)
    lab = cv2.cvtColor(sub.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_BGR2Lab)
    return lab[m > 0].mean(0)


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
    m = max(float(g.mean()), 1.0) / 128.0
    lv = laplacian_var(g)
    return FrameStats(lv, d, sharp_rel=lv / m ** 2, diff_rel=d / m)


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


def _strip_full(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]], n: int = 6) -> np.ndarray:
    """Lower faces at full resolution (1:1 pixels, no resampling): real above rendered, n columns."""
    cols = []
    for real, rend, real_pts, rend_pts in pairs[:n]:
        w = int(1.5 * np.ptp(rend_pts[:, 0])) // 2 * 2
        h = int(0.75 * w) // 2 * 2
        tiles = []
        for img, pts in ((real, real_pts if real_pts is not None else rend_pts), (rend, rend_pts)):
            c = pts.mean(0)
            H, W = img.shape[:2]
            x0 = int(np.clip(c[0] - w // 2, 0, max(W - w, 0)))
            y0 = int(np.clip(c[1] - 0.45 * h, 0, max(H - h, 0)))
            t = np.zeros((h, w, 3), np.uint8)
            sub = img[y0:y0 + h, x0:x0 + w]
            t[: sub.shape[0], : sub.shape[1]] = sub
            tiles.append(t)
        cols.append(np.vstack([tiles[0], np.full((2, w, 3), 255, np.uint8), tiles[1]]))
    h = min(c.shape[0] for c in cols)
    return np.hstack([np.hstack([c[:h], np.full((h, 2, 3), 255, np.uint8)]) for c in cols])


def _iod_px(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[G.EYE_OUTER[0], :2] - landmarks[G.EYE_OUTER[1], :2]))


def evaluate_render(avatar, video: str | Path, out_dir: str | Path, driver: str = "landmarks",
                    max_frames: int | None = None, strip_frames: int = 8, quiet: bool = False,
                    renderer_cfg=None, mp4: bool = True) -> dict:
    """Render `video`'s mouth (its true landmarks, or its audio through the lip model) and compare.

    Returns the figures (also saved as render_quality.json) and writes render_strip.png (zoomed)
    and render_strip_full.png (1:1) in out_dir. `mp4` also encodes the rendered frames with
    `hygie render`'s encoder and measures the mouth in the decoded file.
    """
    import cv2
    from tqdm import tqdm

    from hygie.core.errors import HygieError
    from hygie.core.media.audio_file import load_audio
    from hygie.core.media.decode import iter_video_frames
    from hygie.core.media.encode import write_video_with_audio
    from hygie.core.media.probe import probe_video
    from hygie.core.render.blend import BlendConfig
    from hygie.core.render.drive import coeffs_from_audio
    from hygie.core.render.renderer import Renderer

    if driver not in ("landmarks", "model"):
        raise ValueError("driver must be 'landmarks' or 'model'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = probe_video(video)
    ref = avatar.track["reference"]
    n_max = max_frames or 10 ** 9
    feather = (renderer_cfg.blend if renderer_cfg is not None else BlendConfig()).feather

    # pass 1: the real video: true lips, mouth-box statistics, its own colour seam, strip frames
    det = _Detector(ref)
    real_lips, real_stats, real_pts, real_de, real_lipc = [], [], [], [], []
    prev = None
    fa = FaceAligned(avatar)
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
                real_stats[-1].face_diff = fa.diff(g, lm)
                real_pts.append(pts)
                real_de.append(seam_delta_e(frame, lm[G.MOUTH_REGION, :2], pts, feather * _iod_px(lm)))
                real_lipc.append(lip_colour(frame, pts))
            else:
                real_stats.append(FrameStats(np.nan, np.nan))
                real_pts.append(None)
                fa.diff(g, None)
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

    # pass 2: render, re-detect, measure (the frames stream on into the encoder)
    renderer = Renderer(avatar, cfg=renderer_cfg)
    det = _Detector(ref)
    redetected = np.full_like(real_lips, np.nan)
    rend_stats: list[FrameStats] = []
    boxes: list[tuple[int, int, int, int]] = []
    seam, rend_de, lip_de = [], [], []
    pairs_rend: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    ring_px = max(3, int(round(renderer.feather_px)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
    # the frames the mouth is pasted into (the idle loop's or the body's): their own lips and eyes
    from hygie.core.render.template import landmark_points

    tpl_lips = landmark_points(renderer.frames, G.LIPS)
    tpl_eyes = landmark_points(renderer.frames, np.array(G.EYE_OUTER))

    fa_r = FaceAligned(avatar)

    def rendered():
        prev = None
        for i in tqdm(range(n), desc=f"render ({driver})", unit="frame", disable=quiet):
            frame = renderer.render_lips(requested[i], i) if np.isfinite(requested[i]).all() else renderer.render(None, i)
            last = renderer.last
            redetected[i], lm_r = det.lips(frame)
            g = _grey(frame)
            dst_lips = last["dst"][: len(G.LIPS)]
            box = mouth_box(dst_lips, g.shape)
            boxes.append(box)
            rend_stats.append(_box_stats(g, prev, box))
            rend_stats[-1].face_diff = fa_r.diff(g, lm_r)
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
                iod = float(np.linalg.norm(np.subtract(*tpl_eyes[last["template"]]))) * renderer.tf.scale
                rend_de.append(seam_delta_e(frame, last["dst"], dst_lips, feather * iod))
                own = lip_colour(renderer.idle_frame(i), tpl_lips[last["template"]] * renderer.tf.scale
                                 + [renderer.tf.ox, renderer.tf.oy])
                lip_de.append(float(np.linalg.norm(lip_colour(frame, dst_lips) - own)))
            if i in strip_idx:
                pairs_rend[i] = (frame.copy(), dst_lips.copy())
            yield frame

    mp4_path = out_dir / "rendered.mp4"
    try:
        if mp4:
            write_video_with_audio(mp4_path, rendered(), info.fps, None)
        else:
            for _ in rendered():
                pass
    finally:
        det.close()
        renderer.close()

    # the written file: the same mouth boxes, decoded back
    mp4_sharp = []
    if mp4:
        for k, (_, frame) in enumerate(iter_video_frames(mp4_path)):
            if k >= n:
                break
            x0, y0, x1, y1 = boxes[k]
            mp4_sharp.append(laplacian_var(_grey(frame)[y0:y1, x0:x1]))

    # strips: decode the chosen real frames again (cheap, keeps memory flat)
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
        cv2.imwrite(str(out_dir / "render_strip_full.png"), _strip_full(pairs))

    def ratio(key: str) -> float:
        r = np.array([getattr(s, key) for s in rend_stats])
        q = np.array([getattr(s, key) for s in real_stats])
        return float(np.nanmean(r) / np.nanmean(q))

    mean_mouth = avatar.coeffs_to_lips(np.zeros(avatar.pca["components"].shape[0]))
    fid = lip_distance(redetected, requested)
    real_sharp = float(np.nanmean([s.sharp for s in real_stats]))
    rend_sharp = float(np.nanmean([s.sharp for s in rend_stats]))
    de_r, de_q = float(np.nanmean(rend_de)) if rend_de else float("nan"), float(np.nanmean(real_de)) if real_de else float("nan")
    res = {
        "video": str(video),
        "driver": driver,
        "frames": int(n),
        "frame_size": [int(info.width), int(info.height)],
        "frames_redetected": int(np.isfinite(fid).sum()),
        "fidelity": float(np.nanmean(fid)),
        "fidelity_median": float(np.nanmedian(fid)),
        "sharpness_ratio": ratio("sharp"),
        "sharpness_mp4_ratio": float(np.nanmean(mp4_sharp) / real_sharp) if mp4_sharp else float("nan"),
        "mp4_keeps": float(np.nanmean(mp4_sharp) / rend_sharp) if mp4_sharp else float("nan"),
        "stability_ratio": ratio("diff"),
        "stability_face_ratio": ratio("face_diff"),
        "stability_rel_ratio": ratio("diff_rel"),
        "sharpness_rel_ratio": ratio("sharp_rel"),
        "seam_ssim": float(np.mean(seam)) if seam else float("nan"),
        "seam_de": de_r,
        "seam_de_real": de_q,
        "seam_de_excess": de_r - de_q,
        # lip colour: rendered lips vs the template frame's own lips, beside the real video's
        # lips vs their own median (how much lip colour varies with the mouth's shape)
        "lip_de": float(np.nanmean(lip_de)) if lip_de else float("nan"),
        "lip_de_real": float(np.nanmean(np.linalg.norm(np.array(real_lipc) - np.nanmedian(real_lipc, axis=0), axis=1)))
        if real_lipc else float("nan"),
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
        ("stability against the face, rendered / real (aligned)", "stability_face_ratio"),
        ("stability / brightness, rendered / real", "stability_rel_ratio"),
        ("sharpness / brightness², rendered / real", "sharpness_rel_ratio"),
        ("seam SSIM (ring outside the blend mask)", "seam_ssim"),
        ("colour seam ΔE (Lab), rendered", "seam_de"),
        ("colour seam ΔE (Lab), the real video's own ring", "seam_de_real"),
        ("colour seam ΔE, rendered - real", "seam_de_excess"),
        ("lip colour ΔE, rendered vs the template's own lips", "lip_de"),
        ("lip colour ΔE, real vs its own median", "lip_de_real"),
        ("sharpness in the written mp4, / real", "sharpness_mp4_ratio"),
        ("sharpness in the written mp4, / in memory", "mp4_keeps"),
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
