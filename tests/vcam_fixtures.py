"""The recording camera backend for tests (it lives with the benches, which use it too)."""
from hygie.core.bench.null_camera import BACKEND, RecordingBackend  # noqa: F401  (registers the backend)
