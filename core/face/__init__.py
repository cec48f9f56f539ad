"""The face: MediaPipe landmarks, 3-D alignment and the canonical mouth frame."""
