"""Hygie Avatar: core."""
