"""Rendering: a requested mouth shape -> a real mouth retrieved, warped and blended into the body."""
