"""``python -m bench [WORKLOAD …] [--duration S --connections N --repetitions R]``.

Without a workload every available one runs. Workloads are modules of this package with a
``run(**options)`` function; others (channels, records) register themselves in ``WORKLOADS``.
"""

from __future__ import annotations

import argparse
import importlib

WORKLOADS = {
    "commands": "bench.commands",
    "channels": "bench.channels",
    "records": "bench.records",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "workloads", nargs="*", help=f"any of {', '.join(WORKLOADS)} (default: all)"
    )
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    for name in args.workloads or list(WORKLOADS):
        module = importlib.import_module(WORKLOADS[name])
        module.run(
            connections=args.connections,
            duration=args.duration,
            repetitions=args.repetitions,
            warmup=args.warmup,
        )


if __name__ == "__main__":
    main()
