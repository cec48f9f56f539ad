"""Hygie Avatar: installer."""
