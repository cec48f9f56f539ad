"""Benchmarks: one module per bench, run by `hygie bench PART`."""
