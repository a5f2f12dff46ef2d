"""Reproducible benchmarks: `python -m bench soundness` and `python -m bench check`."""
