"""Benchmarks, run on demand (never timed unit tests)."""
