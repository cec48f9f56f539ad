"""Hygie Avatar: models."""
