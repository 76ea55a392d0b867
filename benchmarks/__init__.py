"""Runnable benchmark scenarios; see docs/benchmarks.md."""
