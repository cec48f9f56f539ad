"""The lip model at run time (onnxruntime; no torch)."""
