"""Audio: log-mel features, resampling, the live microphone and its pass-through."""
