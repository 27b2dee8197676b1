"""Benchmarks: scripts that measure and print figures (gas, time, memory)."""
