"""Rendering: a requested mouth shape -> a real mouth retrieved, warped and blended into the body.

job.py is one whole render job (avatar + speech -> mp4), shared by `hygie render` and `hygie render-batch`.
"""
