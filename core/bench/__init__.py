"""Benchmarks behind `hygie bench`: ratios measured side by side in one run."""
