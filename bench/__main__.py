"""``python -m bench [WORD …] [--full]``: the benchmark suite's table (see :mod:`bench.suite`).

The detailed channel and record benchmarks keep their own entry points:
``python -m bench.channels run`` and ``python -m bench.records run``.
"""

from __future__ import annotations

from bench.suite import main

if __name__ == "__main__":
    main()
