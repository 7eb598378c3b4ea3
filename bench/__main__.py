"""``python -m bench [--only WORD …] [--full]``: the suite's table (see :mod:`bench.suite`).

``python -m bench channels|records [--duration S --repetitions R --warmup S]`` runs instead the
detailed channel or record benchmark (also ``python -m bench.channels run`` and
``python -m bench.records run``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bench import suite

DETAILED = {"channels": "bench.channels", "records": "bench.records"}


def detailed(argv: list[str]) -> None:
    """Run one detailed benchmark (``argv[0]`` names it) with the options it shares."""
    parser = argparse.ArgumentParser(prog=f"python -m bench {argv[0]}")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv[1:])
    importlib.import_module(DETAILED[argv[0]]).run(
        duration=args.duration, repetitions=args.repetitions, warmup=args.warmup
    )


if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] in DETAILED:
        detailed(sys.argv[1:])
    else:
        suite.main(sys.argv[1:])
