"""MediaPipe FaceMesh (478 landmarks, model shipped inside the 0.10.14 wheel), one face tracked."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class FaceResult:
    landmarks: np.ndarray | None  # (478, 3) pixels (z scaled like x), None when no face
    n_faces: int
    other_size: float = 0.0  # area of the largest other face / area of the tracked one


def quiet_mediapipe() -> None:
    """MediaPipe/TFLite print INFO/WARNING lines on every graph start; keep the user's terminal readable."""
    import os
    import warnings

    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)


class FaceTracker:
    """Video-mode FaceMesh that keeps following one face: the largest/most central, then the nearest."""

    def __init__(self, video_mode: bool = True, max_faces: int = 2, min_confidence: float = 0.5):
        quiet_mediapipe()
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video_mode,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        self._last_center: np.ndarray | None = None

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def process(self, frame_bgr: np.ndarray) -> FaceResult:
        return self.process_rgb(np.ascontiguousarray(frame_bgr[:, :, ::-1]))

    def process_rgb(self, rgb: np.ndarray) -> FaceResult:
        """Landmarks of an RGB frame (what MediaPipe takes: no channel swap), in its pixels."""
        h, w = rgb.shape[:2]
        res = self._mesh.process(rgb)
        faces = res.multi_face_landmarks or []
        if not faces:
            return FaceResult(None, 0)
        cands = []
        for f in faces:
            a = np.array([(p.x, p.y, p.z) for p in f.landmark], np.float64)
            a[:, 0] *= w
            a[:, 1] *= h
            a[:, 2] *= w
            cands.append(a)
        if len(cands) == 1:
            pick = cands[0]
        elif self._last_center is not None:
            pick = min(cands, key=lambda a: np.linalg.norm(a[:, :2].mean(0) - self._last_center))
        else:
            centre = np.array([w / 2, h / 2])

            def score(a: np.ndarray) -> float:
                size = np.ptp(a[:, 0]) * np.ptp(a[:, 1])
                off = np.linalg.norm(a[:, :2].mean(0) - centre) / max(w, h)
                return size * (1.0 - off)

            pick = max(cands, key=score)
        self._last_center = pick[:, :2].mean(0)
        area = lambda a: float(np.ptp(a[:, 0]) * np.ptp(a[:, 1]))
        others = [area(a) for a in cands if a is not pick]
        return FaceResult(pick, len(cands), max(others) / max(area(pick), 1e-6) if others else 0.0)
