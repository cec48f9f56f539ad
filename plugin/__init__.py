"""Hygie Avatar: plugin."""
