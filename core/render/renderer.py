"""Predicted mouth shape -> output frame: retrieve a real mouth, warp it, place and blend it.

Per frame (`render_lips`):
1. retrieval: the database mouth whose shape is nearest, with a temporal cost (retrieval.py);
2. destination: the requested canonical lips, given the template frame's own lip depth
   (lips_z), mapped into the template frame's image by the inverse of its canonical
   alignment (its head pose), then to output pixels; the surrounding skin points are
   the template frame's own landmarks, so cheeks, chin and nose base stay where the
   idle footage has them;
3. warp: piecewise-affine over a Delaunay mesh of the 93 mouth-region points (warp.py),
   only inside the mouth's bounding box, crop and its feathered alpha together;
4. frame: the output frame to draw into, a copy of the template / body frame (made ahead on a thread
   where the frames are large: `take`);
5. blend: colour-matched feathered blend into it (blend.py).

The live agent calls exactly `Renderer(avatar, out_size)`, `.render(coeffs|None, tick)`,
`.idle_frame(tick)`, `.reset()` and reads `.closed_coeffs`.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from hygie.core.face import geometry as G
from hygie.core.render import relight as RL
from hygie.core.render.blend import BlendConfig, blend_into_fast, blend_u8, crop_alpha
from hygie.core.render.conditions import (LIP_MARGIN, Conditions, SourceCost, forward_axis, iod_pixels,
                                          template_conditions)
from hygie.core.render.jpeg import decode_jpeg_blob
from hygie.core.render.retrieval import MouthRetriever, RetrievalConfig
from hygie.core.render.body import WalkerConfig
from hygie.core.render.template import OutputTransform, TemplateLoop, landmark_points
from hygie.core.render.warp import PiecewiseAffineWarper, delaunay

log = logging.getLogger(__name__)

N_LIPS = len(G.LIPS)
FRAME_AHEAD_BYTES = 1 << 20  # output frames this large (720p: 2.8 MB) are made ahead on a thread


@dataclass
class RendererConfig:
    fit: str = "letterbox"  # or "crop": how a differently shaped output is filled
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    relight: RL.RelightConfig = field(default_factory=RL.RelightConfig)
    # where the mouth is warped: "output" = straight to output pixels (one bicubic resampling);
    # "native" = at the template's own size, then the box scaled to the output bilinearly, like the
    # body frame around it; "auto" = native when the output enlarges the template (the bilinear body
    # frame is softer than a bicubic mouth: 720p mouth sharpness / frame's 1.54 -> 1.23, and the
    # remap costs the box's output area), else output (docs/renderer.md, "Where the mouth is warped")
    warp_at: str = "auto"
    coarse_maps: bool = True  # HD boxes: warp maps on a half-resolution grid (warp.py)
    crop_cache: int = 512  # decoded database crops kept (a crop is ~20-60 kB)
    jaw_follow: float = 0.5  # how much the skin points (chin, cheeks) follow the requested mouth (0 = template's own)
    # per-frame weight of the new skin offset (1 = none): skin moves smoothly in reality, while a
    # detector- or model-driven request jitters; the lips themselves are never smoothed
    skin_smooth: float = 0.5
    template_memory_mb: float = 384.0
    # make the output frame (copy, cross-fade blend) ahead on the body's / idle loop's thread; False: on
    # the frame path (same bytes either way; for side-by-side measures)
    frame_ahead: bool = True
    body: bool = True  # walk the package's motion graph (body.mp4) when it has one; False: the idle loop
    walker: WalkerConfig = field(default_factory=WalkerConfig)


WARP_AT = ("auto", "output", "native")


def warp_at_output(where: str, tf: OutputTransform) -> bool:
    """True when the mouth is warped straight to output pixels (see RendererConfig.warp_at)."""
    if where not in WARP_AT:
        raise ValueError(f"renderer warp_at must be one of {', '.join(WARP_AT)}, not {where!r}")
    if where == "auto":
        return tf.scale <= 1.0
    return where == "output"


def crop_thumbnails(jpeg: np.ndarray, offsets: np.ndarray, size: tuple[int, int] = (21, 18),
                    points: np.ndarray | None = None, margin_px: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """(M, w*h) mean-removed grey thumbnails of every database crop (the retrieval's appearance
    term) and, given the crops' region points, (M, 3) the Lab colour of the skin around each mouth."""
    import cv2

    from hygie.core.render.conditions import skin_lab

    n = len(offsets) - 1
    out = np.zeros((n, size[0] * size[1]), np.float32)
    lab = None if points is None else np.zeros((n, 3), np.float32)
    mode = cv2.IMREAD_REDUCED_GRAYSCALE_2 if points is None else cv2.IMREAD_REDUCED_COLOR_2  # half-size decode: faster
    for i in range(n):
        img = cv2.imdecode(jpeg[offsets[i]:offsets[i + 1]], mode)
        if lab is not None:
            lab[i] = skin_lab(img, points[i] * 0.5, points[i, : len(G.LIPS_OUTER)] * 0.5, margin_px * 0.5)
            g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        else:
            g = img
        t = cv2.resize(g, size, interpolation=cv2.INTER_AREA).astype(np.float32).ravel() * (1.0 / 255.0)
        out[i] = t - t.mean()
    return out, lab


class Renderer:
    def __init__(self, avatar, out_size: tuple[int, int] | None = None, cfg: RendererConfig | None = None):
        import cv2

        self.avatar = avatar
        self.cfg = cfg or RendererConfig()
        m = avatar.mouths
        self.jpeg, self.offsets = m["jpeg"], m["offsets"]
        self.points = m["points"].astype(np.float32)  # (M, 93, 2) crop pixels
        if self.points.shape[1] != len(G.MOUTH_REGION):
            raise ValueError("mouth database points do not match geometry.MOUTH_REGION; re-run 'hygie enroll'")
        crop = avatar.meta["crop"]
        self.crop_size = (int(crop["size"][0]), int(crop["size"][1]))
        self.feather_px = self.cfg.blend.feather * float(crop["px_per_iod"])
        rc = self.cfg.retrieval
        want_lab = rc.light > 0 and "skin_lab" not in m
        thumbs, lab = (crop_thumbnails(self.jpeg, self.offsets, points=self.points if want_lab else None,
                                       margin_px=LIP_MARGIN * float(crop["px_per_iod"]))
                       if rc.look > 0 or want_lab else (None, None))
        if rc.look <= 0:
            thumbs = None
        if "skin_lab" in m:
            lab = m["skin_lab"].astype(np.float32)
        self.retriever = MouthRetriever(m["coeffs"], m["frame"], N_LIPS, rc, thumbs)
        # bicubic keeps the real mouth's sharpness when it is resampled (bilinear measured 0.70 of real)
        self.warper = PiecewiseAffineWarper(delaunay(self.points.mean(0)), interpolation=cv2.INTER_CUBIC,
                                            coarse_above=96 if self.cfg.coarse_maps else 1 << 30)
        self.tf = OutputTransform.fit(avatar.frame_size, out_size, self.cfg.fit)
        self.size = self.tf.size
        self.warp_at_output = warp_at_output(self.cfg.warp_at, self.tf)
        # the body: a walk over the enrolled footage when the package has one, else the idle loop
        self.body = self.cfg.body and avatar.has("body.npz") and avatar.has("body.mp4")
        if self.body:
            from hygie.core.render.body import BodyPlayer

            # small frames (a 360x288 package at its own size) are copied on the spot: handing one over
            # costs more than copying it
            big = self.size[0] * self.size[1] * 3 >= FRAME_AHEAD_BYTES
            self.loop = BodyPlayer(avatar, self.tf, cfg=self.cfg.walker, ready=2 if self.cfg.frame_ahead and big else 0)
            t = self.loop.arrays
        else:
            self.loop = TemplateLoop(avatar, self.tf, self.cfg.template_memory_mb,
                                     copy_ahead_bytes=FRAME_AHEAD_BYTES if self.cfg.frame_ahead else 1 << 62)
            t = avatar.template
        self.frames = t  # geometry of the frames the mouth is pasted into (frame, landmarks, pose, lips_z)
        # canonical (x, y, z, 1) -> template image pixels, one 2x4 matrix per template frame.
        # The mouth is warped and blended at the template's own resolution (where the crops
        # were cut), then only its box is scaled to the output, exactly like the template frame.
        self._proj = np.stack([self._projection(G.Similarity.from_array(p)) for p in t["pose"]]).astype(np.float32)
        self._lips_z = t["lips_z"].astype(np.float32)
        self._surround = landmark_points(t, G.MOUTH_SURROUND)
        # the template's own outer lips (output pixels) and face scale, for the relight's skin mask
        self._tpl_lips_out = self.tf.points(landmark_points(t, G.LIPS_OUTER))
        eyes = landmark_points(t, np.array(G.EYE_OUTER))
        self._tpl_iod_out = self.tf.scale * np.linalg.norm(eyes[:, 0] - eyes[:, 1], axis=1).astype(np.float32)
        self._native_hw = (avatar.frame_size[1], avatar.frame_size[0])
        # idle: the person's real closed mouth, held still: the median shape of the idle footage
        tr = avatar.track
        tc_all = tr["coeffs"][t["frame"]].astype(np.float32)
        self.closed_coeffs = avatar.closed_coeffs
        self._tpl_coeffs = np.where(np.isfinite(tc_all), tc_all, self.closed_coeffs)
        self._jaw = self._fit_skin_model(m["coeffs"], float(crop["px_per_iod"]))
        self._db_open = m["opening"].astype(np.float32) if "opening" in m else None
        self.source_cost: SourceCost | None = None
        if rc.pose > 0 or rc.light > 0 or rc.scale > 0:
            src_pose = tr["pose"][m["frame"]]
            mc = Conditions(forward_axis(src_pose), iod_pixels(src_pose),
                            lab if lab is not None else np.full((len(src_pose), 3), np.nan, np.float32))
            if "skin_lab" in t:  # a body: measured at enrollment (decoding every frame here would take long)
                tc = Conditions(forward_axis(t["pose"]), iod_pixels(t["pose"]),
                                t["skin_lab"].astype(np.float32) if rc.light > 0 else
                                np.full((len(t["pose"]), 3), np.nan, np.float32))
            elif rc.light > 0:
                tc = template_conditions(self.loop.native, t["landmarks"], t["pose"], LIP_MARGIN)
            else:
                tc = Conditions(forward_axis(t["pose"]), iod_pixels(t["pose"]), np.full((len(t["pose"]), 3), np.nan, np.float32))
            self.source_cost = SourceCost(mc, tc, rc.pose, rc.light, rc.scale)
        self._crops: OrderedDict[int, np.ndarray] = OrderedDict()
        self._gain: np.ndarray | None = None
        self._level: np.ndarray | None = None
        self._ratio: np.ndarray | None = None
        self._ratio_age = 0
        self._skin: np.ndarray | None = None
        if self.cfg.relight.method not in RL.METHODS:
            raise ValueError(f"relight method must be one of {RL.METHODS}, not {self.cfg.relight.method!r}")
        self.timings: dict[str, float] = {}
        self.last: dict = {}
        cv2.setUseOptimized(True)

    def _fit_skin_model(self, coeffs: np.ndarray, px_per_iod: float) -> np.ndarray:
        """Linear map (K, 53*2) from mouth-shape coefficients to canonical skin-point offsets (IOD).

        Fitted on the database itself (crop pixels are canonical positions up to scale and shift):
        when the mouth opens the chin and cheeks move with it, so the template's closed-mouth skin
        points are shifted by the difference in mouth shape, keeping the face consistent
        (a still chin under an open mouth looks pasted, and unsettles the landmark detector too).
        """
        S = self.points[:, N_LIPS:, :].reshape(len(self.points), -1) / px_per_iod
        C = np.asarray(coeffs, np.float64)
        ok = np.isfinite(C).all(1) & np.isfinite(S).all(1)
        if ok.sum() < 4 * C.shape[1]:
            return np.zeros((C.shape[1], S.shape[1]), np.float32)
        Cc = C[ok] - C[ok].mean(0)
        Sc = S[ok] - S[ok].mean(0)
        lam = 1e-3 * np.trace(Cc.T @ Cc) / Cc.shape[1]  # light ridge: stable on small databases
        B = np.linalg.solve(Cc.T @ Cc + lam * np.eye(C.shape[1]), Cc.T @ Sc)
        return (self.cfg.jaw_follow * B).astype(np.float32)

    def _projection(self, sim: G.Similarity) -> np.ndarray:
        # img = R.T @ (c - t) / s ; out = scale * img + o
        Rt = sim.R.T[:2] / sim.s  # (2, 3)
        P = np.zeros((2, 4))
        P[:, :3] = Rt
        P[:, 3] = -Rt @ sim.t
        return P

    # -- public API -------------------------------------------------------------------------
    @property
    def n_template(self) -> int:
        return self.loop.n

    def set_voice(self, voice: bool) -> None:
        """Live: whether voice is present now (the body walks the speaking or the listening footage)."""
        if self.body:
            self.loop.set_voice(voice)

    def set_activity(self, activity: np.ndarray | None) -> None:
        """Offline: voice per tick, known in advance."""
        if self.body:
            self.loop.set_activity(activity)

    def restart_body(self) -> None:
        """Start the body's walk again from its first frame (same seed, same frames for the same voice)."""
        if self.body:
            self.loop.reset()

    def reset(self) -> None:
        """Forget the temporal state (a new utterance or stream)."""
        self.retriever.reset()
        self._gain = None
        self._level = None
        self._ratio = None
        self._skin = None

    def idle_frame(self, tick: int) -> np.ndarray:
        """The raw template frame (no mouth work): a cheap fallback."""
        return self.loop.frame(tick).copy()

    def render(self, coeffs: np.ndarray | None, tick: int) -> np.ndarray:
        """PCA coefficients (K,) -> BGR frame; None = idle (real closed mouth, still)."""
        c = self.closed_coeffs if coeffs is None else np.asarray(coeffs, np.float32).ravel()
        if not np.isfinite(c).all():
            c = self.closed_coeffs
        return self._render(self.avatar.coeffs_to_lips(c), c, tick)

    def render_lips(self, lips: np.ndarray, tick: int) -> np.ndarray:
        """Canonical lips (40, 2) -> BGR frame: the warp lands the mouth on exactly these points."""
        lips = np.asarray(lips, np.float32).reshape(N_LIPS, 2)
        if not np.isfinite(lips).all():  # a lost track upstream: show the still closed mouth
            return self.render(None, tick)
        return self._render(lips, self.avatar.lips_to_coeffs(lips), tick)

    def destination(self, lips: np.ndarray, tick: int) -> np.ndarray:
        """(93, 2) output-pixel destination: requested lips in the template pose + its own skin points."""
        return self.tf.points(self._destination(lips, tick, self.avatar.lips_to_coeffs(lips))).astype(np.float32)

    def _destination(self, lips: np.ndarray, tick: int, coeffs: np.ndarray | None = None,
                     update: bool = False) -> np.ndarray:
        i = self.loop.index(tick)
        c4 = np.concatenate([lips, self._lips_z[i][:, None], np.ones((N_LIPS, 1), np.float32)], axis=1)
        skin = self._surround[i]
        if coeffs is not None:
            d = ((coeffs - self._tpl_coeffs[i]) @ self._jaw).reshape(-1, 2)  # canonical IOD offsets
            if update:
                if self._skin is not None:
                    d = self._skin + self.cfg.skin_smooth * (d - self._skin)
                self._skin = d
            skin = skin + d @ self._proj[i][:, :2].T
        return np.concatenate([c4 @ self._proj[i].T, skin]).astype(np.float32)

    def close(self) -> None:
        self.loop.close()

    # -- internals --------------------------------------------------------------------------
    def crop(self, j: int) -> np.ndarray:
        """Database crop j as BGRA (alpha = its feathered mask), decoded once and cached."""
        import cv2

        c = self._crops.get(j)
        if c is not None:
            self._crops.move_to_end(j)
            return c
        bgr = decode_jpeg_blob(self.jpeg, self.offsets, j)
        a = crop_alpha(self.points[j], (bgr.shape[1], bgr.shape[0]), self.feather_px)
        c = cv2.merge([bgr, a])
        self._crops[j] = c
        if len(self._crops) > self.cfg.crop_cache:
            self._crops.popitem(last=False)
        return c

    def _to_output(self, patch: np.ndarray, x0: int, y0: int) -> tuple[np.ndarray, int, int, None] | None:
        """Scale a native-resolution BGRA box to output pixels with the template's own transform."""
        import cv2

        tf = self.tf
        h, w = patch.shape[:2]
        fx, fy = x0 * tf.scale + tf.ox, y0 * tf.scale + tf.oy
        X0, Y0 = max(int(np.floor(fx)), 0), max(int(np.floor(fy)), 0)
        X1 = min(int(np.ceil((x0 + w) * tf.scale + tf.ox)), tf.size[0])
        Y1 = min(int(np.ceil((y0 + h) * tf.scale + tf.oy)), tf.size[1])
        if X1 <= X0 or Y1 <= Y0:
            return None
        M = np.array([[tf.scale, 0, fx - X0], [0, tf.scale, fy - Y0]], np.float64)
        out = cv2.warpAffine(patch, M, (X1 - X0, Y1 - Y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return out, X0, Y0, None

    def _render(self, lips: np.ndarray, coeffs: np.ndarray, tick: int) -> np.ndarray:
        t0 = time.perf_counter()
        p = self.retriever.prev
        j = self.retriever.choose(coeffs, self._bias(lips, tick))
        # light/colour smoothed along a run of the same source footage, re-measured on a jump
        same_run = p >= 0 and (j == p or j == self.retriever.succ[p])
        t1 = time.perf_counter()
        dst = self._destination(lips, tick, coeffs, update=True)
        dst_out = self.tf.points(dst).astype(np.float32)
        src = self.crop(j)
        if self.warp_at_output:
            res = self.warper.warp(src, self.points[j], dst_out, (self.size[1], self.size[0]))
            placed = None if res is None else (res.patch, res.x0, res.y0, res.cover)
        else:
            res = self.warper.warp(src, self.points[j], dst, self._native_hw)
            placed = None
            if res is not None:
                placed = (res.patch, res.x0, res.y0, res.cover) if self.tf.identity else self._to_output(res.patch, res.x0, res.y0)
        t2 = time.perf_counter()
        # the output frame to draw into: made ahead on the body's / idle loop's thread where it can be
        out = self.loop.take(tick)
        t3 = time.perf_counter()
        alpha = None
        if placed is not None:
            alpha = self._composite(out, placed, dst_out, self.loop.index(tick), same_run)
        t4 = time.perf_counter()
        self.timings = {"retrieval": t1 - t0, "warp": t2 - t1, "frame": t3 - t2, "blend": t4 - t3, "total": t4 - t0}
        self.last = {"mouth": j, "template": self.loop.index(tick), "dst": dst_out, "lips": lips,
                     "alpha": alpha, "x0": placed[1] if placed else 0, "y0": placed[2] if placed else 0}
        return out

    def _bias(self, lips: np.ndarray, tick: int):
        """Per-candidate cost beyond shape and time: source conditions, and a mouth too closed to open."""
        src = self.source_cost.for_template(self.loop.index(tick)) if self.source_cost is not None else None
        w_open = self.cfg.retrieval.open_deficit
        if w_open <= 0 or self._db_open is None:
            return src
        want = float(G.mouth_opening(lips))

        def cost(ids: np.ndarray) -> np.ndarray:
            c = w_open * np.maximum(want - self._db_open[ids], 0.0)
            return c + src(ids) if src is not None else c

        return cost

    def _composite(self, out: np.ndarray, placed: tuple, dst_out: np.ndarray, i: int, same_run: bool) -> np.ndarray:
        """Relight the warped patch with the template frame's light and blend it into `out`; returns alpha."""
        import cv2

        patch_bgra, x0, y0, cover = placed
        method = self.cfg.relight.method
        if method == "gain":
            alpha, self._gain = blend_into_fast(out, patch_bgra, x0, y0, self.cfg.blend,
                                                prev_gain=self._gain if same_run else None)
            return alpha
        h, w = patch_bgra.shape[:2]
        roi = out[y0:y0 + h, x0:x0 + w]
        alpha = cv2.extractChannel(patch_bgra, 3)
        patch = cv2.cvtColor(patch_bgra, cv2.COLOR_BGRA2BGR)
        if method == "ratio":
            rc = self.cfg.relight
            if same_run and self._ratio is not None and self._ratio_age < rc.every - 1:
                ratio = self._ratio  # the light has not moved since the last measure
                self._ratio_age += 1
            else:
                off = np.array([x0, y0], np.float32)
                lips = [dst_out[: len(G.LIPS_OUTER)] - off, self._tpl_lips_out[i] - off]
                rf = RL.ratio_field(patch, roi, dst_out - off, lips, float(self._tpl_iod_out[i]), rc)
                if rf is None:
                    ratio = np.ones((2, 2, 3), np.float32) * (self._level if self._level is not None else 1.0)
                else:
                    ratio, level = rf
                    if same_run and self._ratio is not None:
                        # along one source run the light field moves smoothly: no shimmer from
                        # re-measuring it (the grid follows the mouth box, so the last one is resized)
                        prev = cv2.resize(self._ratio, (ratio.shape[1], ratio.shape[0]), interpolation=cv2.INTER_LINEAR)
                        ratio = prev + rc.smooth * (ratio - prev)
                    self._level = level
                self._ratio, self._ratio_age = ratio, 0
            RL.blend_ratio(roi, patch, alpha, ratio)
        elif method == "lab":
            band = cv2.inRange(alpha, int(self.cfg.blend.band[0] * 255) + 1, int(self.cfg.blend.band[1] * 255) - 1)
            if cv2.countNonZero(band) >= 20:
                patch = RL.lab_transfer(patch, roi, band)
            blend_u8(roi, patch, alpha)
        elif method == "multiband":
            RL.multiband_blend(roi, patch, alpha)
        elif method == "poisson":
            RL.poisson_blend(out, patch, alpha, x0, y0)
        return alpha
