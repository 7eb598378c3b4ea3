"""Benchmarks: ``python -m bench [workload …]`` prints one table per workload."""
