"""Benchmarks: ``python -m bench`` prints the suite's table (:mod:`bench.suite`)."""
