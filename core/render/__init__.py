"""Rendering: one render job (job.py) shared by `hygie render` and `hygie render-batch`."""
