"""Media files: probing, decoding (video frames, audio) and encoding, with PyAV."""
