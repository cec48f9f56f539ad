"""Invisible watermark in the luma of every frame: a periodic, DFT-domain spread-spectrum tile.

Scheme (version 1; public, so anyone can check a file):

- One tile of N x N canonical pixels is defined in its 2-D DFT: every frequency (u, v) whose
  radius lies in [R_LO, R_HI] cycles per tile (periods of 8 to 40 canonical pixels: mid
  frequencies that survive H.264 at low bit rates and halving the size) gets magnitude 1.
  A quarter of them carry a fixed pseudo-random phase (the *sync*); the others carry two
  chips each (real and imaginary part against a pseudo-random phase) of the 258 coded bits
  of the payload (payload.py: 64 bits + CRC-16, K=7 rate-1/3 convolutional code, each coded
  bit spread over ~2 chips at scattered frequencies).
- The tile is tiled over the frame at a scale of max(H, 360) / 720 frame pixels per canonical
  pixel (one tile = 128 px at 720p, 192 px at 1080p, 64 px at 288p) and added to B, G and R
  alike (a luma-only change) at RMS AMPLITUDE grey levels: PSNR about 43 dB.
- Reading a window of frames: average their luma, keep the band (difference of Gaussians),
  clip strong edges. The period is found from the spectrum: a periodic tile puts energy on a
  lattice of frequencies, so the candidate period whose lattice collects the most whitened
  energy wins (this survives scaling and cropping, which change the period the reader sees).
  The averaged residual is resized so the period is N pixels and folded into one tile; a
  cyclic cross-correlation with the sync phases gives the shift (survives cropping) and a
  z-score (presence); the payload chips are read at that shift, Viterbi-decoded, and only a
  payload whose CRC checks is reported.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from hygie.core.provenance import payload as PL

log = logging.getLogger(__name__)

N = 128  # tile size in canonical pixels (DFT grid)
REF_HEIGHT = 720  # canonical pixels per frame height at scale 1
MIN_HEIGHT = 540
R_LO, R_HI = 7.0, 17.0  # band: cycles per tile (periods of 7.5 to 18 canonical px)
SYNC_FRACTION = 0.25
MASK_RANGE = (0.35, 2.5)  # limits of the masking gain before normalisation
# Smooth scenes (an upscaled 288p avatar at 720p) show a mid-frequency texture that a natural
# picture hides: there the RMS drops with the scene's median local contrast, down to AMP_FLOOR.
ACTIVITY_REF = 1.3  # median local std (grey levels) at and above which the full AMPLITUDE is used
AMP_FLOOR = 0.4
AMPLITUDE = 1.7  # RMS of the added pattern in grey levels (PSNR ~ 43 dB)
KEY = b"hygie-avatar watermark v1"
SYNC_THRESHOLD = 6.5  # sync z (null: ~N(0,1) per shift; the max over 16k shifts x 9 periods stays < 5.5)
WINDOW_SECONDS = 2.0
SEARCH = (0.45, 1.35)  # period search range, relative to the period expected from the frame height
SEARCH_STEP = 0.0015  # relative step of the period search (log-spaced)


def scale_for_height(h: int) -> float:
    """Frame pixels per canonical pixel for a frame `h` lines tall."""
    return max(int(h), MIN_HEIGHT) / REF_HEIGHT


@dataclass(frozen=True)
class Layout:
    """Which DFT coefficients of the tile carry what; fixed by KEY."""

    u: np.ndarray  # horizontal frequency (cycles per tile), half plane
    v: np.ndarray  # vertical frequency
    sync: np.ndarray  # indices into u/v
    data: np.ndarray
    sync_phase: np.ndarray  # (len(sync),) radians
    data_phase: np.ndarray  # (len(data),) radians
    chip_bit: np.ndarray  # (2 * len(data),) coded-bit index of each chip (real chips then imaginary)


@lru_cache(maxsize=1)
def layout() -> Layout:
    rng = np.random.default_rng(np.frombuffer(hashlib.sha256(KEY).digest(), np.uint32))
    f = np.arange(-N // 2, N // 2)
    uu, vv = np.meshgrid(f, f)
    r = np.hypot(uu, vv)
    half = (vv > 0) | ((vv == 0) & (uu > 0))
    sel = (r >= R_LO) & (r <= R_HI) & half
    u, v = uu[sel], vv[sel]
    order = rng.permutation(len(u))
    u, v = u[order], v[order]
    n_sync = int(round(SYNC_FRACTION * len(u)))
    sync, data = np.arange(n_sync), np.arange(n_sync, len(u))
    n_chips = 2 * len(data)
    chip_bit = rng.permutation(np.arange(n_chips) % PL.CODED_BITS)  # interleaved: a bit's chips are far apart
    return Layout(u, v, sync, data, rng.uniform(0, 2 * np.pi, n_sync), rng.uniform(0, 2 * np.pi, len(data)), chip_bit)


def _hermitian(spec_half: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Full N x N spectrum from half-plane coefficients (real tile)."""
    full = np.zeros((N, N), np.complex128)
    full[v % N, u % N] = spec_half
    full[(-v) % N, (-u) % N] = np.conj(spec_half)
    return full


def tile_for(p: PL.Payload) -> np.ndarray:
    """The N x N tile for a payload, unit RMS."""
    L = layout()
    chips = 1.0 - 2.0 * p.coded()[L.chip_bit].astype(np.float64)  # bit 0 -> +1
    nd = len(L.data)
    coef = np.empty(len(L.u), np.complex128)
    coef[L.sync] = np.exp(1j * L.sync_phase)
    coef[L.data] = np.exp(1j * L.data_phase) * (chips[:nd] + 1j * chips[nd:]) / np.sqrt(2)
    t = np.fft.ifft2(_hermitian(coef, L.u, L.v)).real
    return t / t.std()


def _activity(y: np.ndarray) -> np.ndarray:
    import cv2

    s = scale_for_height(y.shape[0])
    mu = cv2.GaussianBlur(y, (0, 0), 3.0 * s)
    return np.sqrt(np.maximum(cv2.GaussianBlur(y * y, (0, 0), 3.0 * s) - mu * mu, 0))


def masking_gain(frame: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-pixel strength (RMS 1) and the scene's overall factor (<= 1): weaker on flat areas
    (a plain wall, where a faint texture would show), stronger in textured ones (hair, clothes,
    shelves, which hide it), and weaker overall on a smooth scene."""
    import cv2

    y = luma(frame)
    act = _activity(y)
    med = float(np.median(act))
    g = np.clip(np.sqrt(act / (med + 1e-3)), MASK_RANGE[0], MASK_RANGE[1])
    g = cv2.GaussianBlur(g.astype(np.float32), (0, 0), 4.0 * scale_for_height(y.shape[0]))  # no hard edges
    scene = float(np.clip(med / ACTIVITY_REF, AMP_FLOOR, 1.0))
    return g / float(np.sqrt(np.mean(g * g))), scene


def pattern(width: int, height: int, p: PL.Payload, amplitude: float = AMPLITUDE,
            gain: np.ndarray | None = None) -> np.ndarray:
    """The int16 luma pattern (height, width) to add to a frame of that size (RMS = amplitude)."""
    import cv2

    s = scale_for_height(height)
    wc, hc = int(round(width / s)), int(round(height / s))
    t = tile_for(p)
    canvas = np.tile(t, (hc // N + 1, wc // N + 1))[:hc, :wc].astype(np.float32)
    if (wc, hc) != (width, height):
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
        canvas = cv2.resize(canvas, (width, height), interpolation=interp)
    if gain is not None:
        canvas *= gain
    canvas *= amplitude / max(float(np.sqrt(np.mean(canvas * canvas))), 1e-6)
    return np.rint(canvas).astype(np.int16)


class Embedder:
    """Adds the pattern to BGR frames. A pattern (shaped by the masking gain of a reference frame
    of the same scene) is built once per (size, payload, reference) and cached, so a frame costs
    one saturating add and one saturating subtract (about 0.2 ms at 1280x720 on one core)."""

    def __init__(self, amplitude: float = AMPLITUDE, cache: int = 4):
        self.amplitude = amplitude
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._max = cache
        self.gain: np.ndarray | None = None
        self.scene = 1.0
        self._gain_id = 0

    def set_reference(self, frame: np.ndarray | None) -> None:
        """Shape the strength after this frame of the scene (None: uniform)."""
        self.gain, self.scene = (None, 1.0) if frame is None else masking_gain(frame)
        self._gain_id += 1

    def _key(self, width: int, height: int, p: PL.Payload) -> tuple:
        shaped = self.gain is not None and self.gain.shape == (height, width)
        return width, height, p.to_int(), self._gain_id if shaped else 0

    def ready(self, width: int, height: int, p: PL.Payload) -> bool:
        return self._key(width, height, p) in self._cache

    def planes(self, width: int, height: int, p: PL.Payload) -> tuple[np.ndarray, np.ndarray]:
        key = self._key(width, height, p)
        gain = self.gain if key[3] else None
        got = self._cache.get(key)
        if got is None:
            pat = pattern(width, height, p, self.amplitude * (self.scene if gain is not None else 1.0), gain)
            pos = np.repeat(np.clip(pat, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
            neg = np.repeat(np.clip(-pat, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
            if len(self._cache) >= self._max:
                self._cache.pop(next(iter(self._cache)))
            got = self._cache[key] = (pos, neg)
        return got

    def apply(self, frame: np.ndarray, p: PL.Payload) -> np.ndarray:
        """A new marked BGR uint8 frame (the input is left as it is)."""
        import cv2

        h, w = frame.shape[:2]
        if self.gain is None:
            self.set_reference(frame)
        pos, neg = self.planes(w, h, p)
        out = cv2.add(frame, pos)
        cv2.subtract(out, neg, dst=out)
        return out


# ---------------------------------------------------------------- reading
@dataclass
class Detection:
    found: bool  # sync present (z >= SYNC_THRESHOLD)
    z: float  # sync z-score
    payload: PL.Payload | None  # decoded and CRC-checked
    period: float  # tile period in the frames read (px)
    shift: tuple[float, float]  # (dx, dy) of the tile origin, px of the folded grid
    frames: int

    def as_dict(self) -> dict:
        return {"found": self.found, "z": round(self.z, 2), "frames": self.frames,
                "period_px": round(self.period, 2), "payload": self.payload.as_dict() if self.payload else None}


def luma(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 2:
        return frame.astype(np.float32)
    return cv2.cvtColor(frame.astype(np.float32), cv2.COLOR_BGR2GRAY)


def residual(y: np.ndarray, s_guess: float) -> np.ndarray:
    """Band-pass (difference of Gaussians) with strong edges clipped: what is left is mostly the mark."""
    import cv2

    hi = cv2.GaussianBlur(y, (0, 0), 0.5)
    lo = cv2.GaussianBlur(y, (0, 0), 4.0 * s_guess)
    r = hi - lo
    c = 3.0 * 1.4826 * float(np.median(np.abs(r))) + 1e-3
    return np.clip(r, -c, c)


def _comb(white: np.ndarray, shape: tuple[int, int], periods: np.ndarray) -> np.ndarray:
    """Mean whitened spectral energy on the tile's frequency lattice, for each candidate period."""
    h, w = shape
    L = layout()
    u, v = L.u.astype(np.float64), L.v.astype(np.float64)
    sgn = np.where(u < 0, -1.0, 1.0)  # rfft2 keeps u >= 0: use the conjugate point
    uu, vv = u * sgn, v * sgn
    kx = uu[None, :] * w / periods[:, None]
    ky = vv[None, :] * h / periods[:, None]
    ok = (kx < w // 2 - 1) & (np.abs(ky) < h // 2 - 1)
    ky = np.mod(ky, h)
    x0 = np.floor(kx).astype(np.int64)
    y0 = np.floor(ky).astype(np.int64)
    fx, fy = kx - x0, ky - y0
    x0 = np.clip(x0, 0, white.shape[1] - 2)
    y1 = (y0 + 1) % h
    val = (white[y0, x0] * (1 - fx) * (1 - fy) + white[y0, x0 + 1] * fx * (1 - fy)
           + white[y1, x0] * (1 - fx) * fy + white[y1, x0 + 1] * fx * fy)
    return np.where(ok, val, 0).sum(1) / np.maximum(ok.sum(1), 1)


def estimate_periods(r: np.ndarray, s_guess: float, top: int = 5) -> list[float]:
    """Candidate tile periods (px) whose frequency lattice holds the most whitened spectral energy.

    A coarse log-spaced search over SEARCH, then a fine one (0.02 %) around each of the best peaks:
    folding 10 tiles needs the period right to ~0.05 %.
    """
    import cv2

    h, w = r.shape
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    spec = (np.abs(np.fft.rfft2(r * win)) ** 2).astype(np.float32)
    white = spec / (cv2.blur(spec, (9, 9), borderType=cv2.BORDER_REFLECT) + 1e-9)
    periods = N * s_guess * np.exp(np.arange(np.log(SEARCH[0]), np.log(SEARCH[1]), SEARCH_STEP))
    score = _comb(white, (h, w), periods)
    peaks = [i for i in range(1, len(score) - 1) if score[i] >= score[i - 1] and score[i] >= score[i + 1]]
    peaks.sort(key=lambda i: -score[i])
    out = []
    for i in peaks[:top]:
        fine = periods[i] * np.exp(np.linspace(-1.5 * SEARCH_STEP, 1.5 * SEARCH_STEP, 31))
        out.append(float(fine[int(np.argmax(_comb(white, (h, w), fine)))]))
    return out


def fold(r: np.ndarray, period: float) -> np.ndarray:
    """Resize so one period is N px, then average all tiles into one N x N tile."""
    import cv2

    h, w = r.shape
    f = N / period
    nw, nh = max(N, int(round(w * f))), max(N, int(round(h * f)))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    z = cv2.resize(r, (nw, nh), interpolation=interp)
    ph, pw = -nh % N, -nw % N
    z = np.pad(z, ((0, ph), (0, pw)))
    cnt = np.pad(np.ones((nh, nw), np.float32), ((0, ph), (0, pw)))
    tiles = z.reshape(z.shape[0] // N, N, z.shape[1] // N, N).sum((0, 2))
    counts = cnt.reshape(cnt.shape[0] // N, N, cnt.shape[1] // N, N).sum((0, 2))
    return tiles / np.maximum(counts, 1)


def _sync_surface(F: np.ndarray) -> np.ndarray:
    """Phase-only correlation with the sync over every cyclic shift, in units of its null std:
    without a mark each value is ~N(0, 1) (a sum of len(sync) random cosines)."""
    L = layout()
    su, sv = L.u[L.sync], L.v[L.sync]
    c = F[sv % N, su % N]
    spec = _hermitian(c / (np.abs(c) + 1e-12) * np.exp(-1j * L.sync_phase), su, sv)
    # ifft2 of the conjugate-symmetric spectrum: sum over both half-plane points = 2 * sum cos
    return np.fft.ifft2(spec).real * N * N / np.sqrt(2.0 * len(L.sync))


def _z(surface: np.ndarray) -> tuple[float, int, int]:
    iy, ix = np.unravel_index(int(np.argmax(surface)), surface.shape)
    return float(surface[iy, ix]), int(iy), int(ix)


def _subpixel(surface: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    def par(a: float, b: float, c: float) -> float:
        d = a - 2 * b + c
        return 0.0 if d >= 0 else 0.5 * (a - c) / d
    dy = par(surface[(iy - 1) % N, ix], surface[iy, ix], surface[(iy + 1) % N, ix])
    dx = par(surface[iy, (ix - 1) % N], surface[iy, ix], surface[iy, (ix + 1) % N])
    return iy + dy, ix + dx


def _soft_bits(F: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Registered payload chips, each ring of frequencies scaled by its own RMS (image content is
    far stronger at the low end of the band; unscaled, those chips would drown the others)."""
    L = layout()
    u, v = L.u[L.data], L.v[L.data]
    c = F[v % N, u % N] * np.exp(2j * np.pi * (u * dx + v * dy) / N) * np.exp(-1j * L.data_phase)
    ring = np.floor(np.hypot(u, v)).astype(np.int64)
    rms = np.sqrt(np.bincount(ring, np.abs(c) ** 2) / np.maximum(np.bincount(ring), 1)) + 1e-12
    c = c / rms[ring]
    chips = np.concatenate([c.real, c.imag])
    soft = np.zeros(PL.CODED_BITS)
    np.add.at(soft, L.chip_bit, chips)
    return soft


def read_tile(tile: np.ndarray) -> tuple[float, PL.Payload | None, tuple[float, float]]:
    """Folded tile -> (sync z, payload or None, (dx, dy))."""
    F = np.fft.fft2(tile)
    surf = _sync_surface(F)
    z, iy, ix = _z(surf)
    dy, dx = _subpixel(surf, iy, ix)
    p = PL.decode(_soft_bits(F, dy, dx)) if z >= SYNC_THRESHOLD else None
    return z, p, (dx, dy)


class WindowReader:
    """Accumulates the luma of the frames of one window in thirds; `read()` registers and decodes.

    Where the time code changed inside the window (live, at a minute boundary) the whole window
    mixes two payloads: then the first and the last two thirds are decoded on their own.
    """

    def __init__(self, expected: int | None = None) -> None:
        self.expected = expected
        self.thirds: list[np.ndarray] = []
        self.counts = [0, 0, 0]
        self.n = 0

    def add(self, frame: np.ndarray) -> None:
        y = luma(frame)
        if not self.thirds or self.thirds[0].shape != y.shape:
            self.thirds, self.counts, self.n = [np.zeros_like(y) for _ in range(3)], [0, 0, 0], 0
        k = min(2, 3 * self.n // self.expected) if self.expected else self.n % 3
        self.thirds[k] += y
        self.counts[k] += 1
        self.n += 1

    def read(self) -> Detection:
        if not self.n:
            return Detection(False, 0.0, None, 0.0, (0.0, 0.0), 0)
        d = detect_luma(sum(self.thirds) / self.n, self.n)
        if d.found and d.payload is None and self.expected and min(self.counts) > 0:
            s_guess = scale_for_height(self.thirds[0].shape[0])
            for a, b in ((0, 2), (1, 3)):
                part = sum(self.thirds[a:b]) / sum(self.counts[a:b])
                z, p, shift = read_tile(fold(residual(part, s_guess), d.period))
                if p is not None:
                    return Detection(True, z, p, d.period, shift, sum(self.counts[a:b]))
        return d


def detect_luma(y: np.ndarray, n_frames: int = 1) -> Detection:
    """Average luma of a window -> detection. For each candidate period from the spectrum: decode
    there; failing that, sweep +-1 % (0.1 % steps) for the strongest sync and decode at that period
    (on small frames the spectral lattice is coarse and the first estimate can be ~0.5 % off)."""
    s_guess = scale_for_height(y.shape[0])
    r = residual(y, s_guess)
    best: Detection | None = None

    def attempt(pp: float) -> Detection:
        nonlocal best
        z, p, shift = read_tile(fold(r, pp))
        d = Detection(z >= SYNC_THRESHOLD, z, p, pp, shift, n_frames)
        if best is None or (d.payload is not None, d.z) > (best.payload is not None, best.z):
            best = d
        return d

    for period in estimate_periods(r, s_guess):
        for pp in (period, period * 0.9995, period * 1.0005):
            if attempt(pp).payload is not None:
                return best
        sweep = [attempt(period * (1 + 0.001 * k)) for k in range(-10, 11) if k]
        top = max(sweep, key=lambda d: d.z)
        if top.payload is not None:
            return top
        for pp in (top.period * 0.9997, top.period * 1.0003):
            if attempt(pp).payload is not None:
                return best
    return best or Detection(False, 0.0, None, 0.0, (0.0, 0.0), n_frames)


def detect_frames(frames: Iterable[np.ndarray]) -> Detection:
    frames = list(frames)
    w = WindowReader(len(frames))
    for f in frames:
        w.add(f)
    return w.read()


@dataclass
class Scan:
    """What the watermark reader found in a file or a folder of frames, window by window."""

    source: str
    window_s: float
    windows: list[Detection] = field(default_factory=list)

    @property
    def payloads(self) -> dict[int, tuple[PL.Payload, int]]:
        out: dict[int, tuple[PL.Payload, int]] = {}
        for d in self.windows:
            if d.payload is not None:
                k = d.payload.to_int()
                out[k] = (d.payload, out.get(k, (d.payload, 0))[1] + 1)
        return out

    @property
    def n_read(self) -> int:
        return sum(d.payload is not None for d in self.windows)

    @property
    def n_sync(self) -> int:
        return sum(d.found for d in self.windows)

    def as_dict(self) -> dict:
        return {"source": self.source, "window_s": self.window_s, "windows": len(self.windows),
                "windows_read": self.n_read, "windows_sync_only": self.n_sync - self.n_read,
                "payloads": [dict(p.as_dict(), windows=n) for p, n in self.payloads.values()]}


def scan_frames(frames: Iterable[np.ndarray], per_window: int, source: str = "", window_s: float = WINDOW_SECONDS,
                max_windows: int | None = None, progress: bool = False, bar_total: int | None = None) -> Scan:
    """Read consecutive windows of `per_window` frames (a last, shorter window counts if >= half)."""
    from tqdm import tqdm

    scan = Scan(source, window_s)
    w = WindowReader(per_window)
    bar = tqdm(total=bar_total or max_windows, desc="watermark", unit="window", disable=not progress)
    for f in frames:
        w.add(f)
        if w.n == per_window:
            scan.windows.append(w.read())
            bar.update(1)
            w = WindowReader(per_window)
            if max_windows and len(scan.windows) >= max_windows:
                bar.close()
                return scan
    bar.close()
    if w.n and (w.n * 2 >= per_window or not scan.windows):
        w.expected = w.n
        scan.windows.append(w.read())
    return scan


def scan_video(path: str | os.PathLike, window_s: float = WINDOW_SECONDS, max_windows: int | None = None,
               progress: bool = False) -> Scan:
    from hygie.core.media.decode import iter_video_frames
    from hygie.core.media.probe import probe_video

    info = probe_video(path)
    per = max(1, int(round(window_s * info.fps)))
    total = int(np.ceil(info.duration / window_s)) if info.duration else None
    bar_total = min(x for x in (max_windows, total) if x) if (max_windows or total) else None
    return scan_frames((f for _, f in iter_video_frames(path)), per, str(path), window_s, max_windows, progress,
                       bar_total)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def scan_folder(folder: str | os.PathLike, fps: float = 30.0, window_s: float = WINDOW_SECONDS,
                max_windows: int | None = None) -> Scan:
    """Frames saved as images (sorted by name), read in windows of `window_s` at `fps`."""
    import cv2

    files = image_files(Path(folder))

    def frames() -> Iterator[np.ndarray]:
        for p in files:
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("%s: not readable as an image; skipped", p)
                continue
            yield img

    return scan_frames(frames(), max(1, int(round(window_s * fps))), str(folder), window_s, max_windows)
