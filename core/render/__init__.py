"""Renderer parts: relighting of the pasted mouth (the rest moves here with the redesign, issue 11)."""
