"""Benchmarks: scripts that print figures with their conditions (never timed assertions)."""
