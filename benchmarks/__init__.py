"""Benchmarks: scripts that print and write JSON (speed, memory, active-learning quality vs the peers)."""
