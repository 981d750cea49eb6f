"""Benchmarks (性能基准): ``python -m bench.run``, ``python -m bench.generate``; see bench/README.md."""
