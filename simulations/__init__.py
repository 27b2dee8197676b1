"""Scenarios, demo data, the one-machine runner and benchmarks. Nothing imports this package."""
