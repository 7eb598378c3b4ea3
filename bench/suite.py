"""The benchmark suite: every workload against mesh-py and the floors, one table.

``python -m bench`` (``make bench``) runs the quick mode (one repetition of short windows, under
two minutes on an idle 2-core box); ``BENCH=full`` or ``--full`` (``make bench-full``) runs three
repetitions of 5 s windows for release notes. Each point has fresh servers (and a fresh private
Redis); within a workload the variants' order rotates every repetition; cells are medians.

Columns: throughput (operations/s; the operation is named in the cell), p50/p99 latency of one
operation, server CPU per operation (µs, every server process of the point, from
``/proc/PID/stat``), Redis commands per publish/update/write (``INFO commandstats`` delta, which
counts the commands scripts run too; the script calls among them in parentheses), and
throughput ÷ the bare Node ``ws`` floor of the same workload. The ``client`` column is the load
generator's CPU use (cores): near 1.0 it, not the server, may be the limit.

External server kinds (``--external NAME=CMD``, repeatable, or ``MESH_BENCH_EXTERNAL`` holding
``NAME=CMD`` entries separated by ``;``) join the rotation of every workload that has ``mesh``
rows, with as many instances as those rows (see :func:`bench.harness.external` for what the
command must do). When one is named ``original`` the table gets a ``÷ original`` column: each
row's throughput ÷ that kind's in the same workload.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.harness import Variant, bare, external, measure_point, mesh, node_floor
from bench.servers import MESH_TRANSPORTS


@dataclass(frozen=True)
class Mode:
    """Sizes of one run of the suite (seconds)."""

    name: str
    duration: float
    warmup: float
    repetitions: int


QUICK = Mode("quick", duration=0.8, warmup=0.2, repetitions=1)
FULL = Mode("full", duration=5.0, warmup=1.0, repetitions=3)


@dataclass(frozen=True)
class Workload:
    """One group of rows: a client invocation and the variants it runs against.

    Attributes:
        title: Group heading.
        client: ``bench.client`` arguments (the harness adds ``--url``; the suite adds sizes).
        op: Name of one operation (throughput and CPU are per operation).
        variants: Rows, in their first-repetition order.
        per: The result key Redis commands are divided by and its unit's name (``publishes``
            for fan-out); ``None``: per operation.
        timed: Whether the client takes ``--duration``/``--warmup`` (the storm does not).
    """

    title: str
    client: tuple[str, ...]
    op: str
    variants: tuple[Variant, ...]
    per: tuple[str, str] | None = None
    timed: bool = True


#: The external kind that the ``÷ original`` column divides by.
ORIGINAL = "original"
EXTERNAL_ENV = "MESH_BENCH_EXTERNAL"


def workloads(node: Variant | None, externals: Sequence[str] = ()) -> list[Workload]:
    """Every workload of the suite (the Node floor where it applies and exists).

    Args:
        node: The Node floor, if any.
        externals: ``NAME=CMD`` specs of external kinds (rows beside the ``mesh`` rows).
    """
    floors = tuple(v for v in (node, bare("websockets"), bare("picows")) if v is not None)
    memory = tuple(mesh("memory", t) for t in MESH_TRANSPORTS)
    on_redis = tuple(mesh("redis", t) for t in MESH_TRANSPORTS)
    two = tuple(mesh("redis", t, instances=2) for t in MESH_TRANSPORTS)
    two += tuple(external(spec, instances=2) for spec in externals)
    both = memory + on_redis + tuple(external(spec) for spec in externals)
    publish = ("publishes", "publish")
    groups = [
        Workload("echo RPC, 10 connections", ("echo", "--connections", "10"), "req",
                 floors + both),
        Workload("echo RPC, 100 connections", ("echo", "--connections", "100"), "req",
                 floors + both),
        Workload("channel fan-out 1→100, 16 publishes in flight",
                 ("fanout", "--kind", "channel", "--connections", "100"), "delivery",
                 floors + both, per=publish),
        Workload("channel fan-out 1→1000, 16 publishes in flight",
                 ("fanout", "--kind", "channel", "--connections", "1000"), "delivery",
                 floors + both, per=publish),
        Workload("room broadcast → 1000 over 2 instances (Redis)",
                 ("fanout", "--kind", "room", "--connections", "1000"), "delivery", two,
                 per=publish),
        Workload("record fan-out → 100, full, 16 updates in flight",
                 ("fanout", "--kind", "full", "--connections", "100"), "delivery", both,
                 per=("publishes", "update")),
        Workload("record fan-out → 100, patch, 16 updates in flight",
                 ("fanout", "--kind", "patch", "--connections", "100"), "delivery", both,
                 per=("publishes", "update")),
        Workload("200 concurrent record writes over 2 instances (Redis)",
                 ("writes", "--connections", "200"), "write", two),
        Workload("connection storm: 5000 connections, 200 handshakes in flight",
                 ("storm", "--connections", "5000", "--in-flight", "200"), "conn",
                 floors + both, timed=False),
    ]  # fmt: skip
    return groups


def run_workload(
    workload: Workload, mode: Mode, log: Callable[[str], None]
) -> dict[str, list[dict[str, Any]]]:
    """Measure every variant ``mode.repetitions`` times, rotating the order each repetition."""
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in workload.variants}
    variants = list(workload.variants)
    args = list(workload.client)
    if workload.timed:
        args += ["--duration", str(mode.duration), "--warmup", str(mode.warmup)]
    for rep in range(mode.repetitions):
        shift = rep % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            record = f"bench:{rep}:{len(runs[variant.name])}"
            result = measure_point(variant, [*args, "--record", record])
            runs[variant.name].append(result)
            log(f"  {workload.title} | {variant.name}: {result['ops'] / result['seconds']:.0f}/s")
    return runs


def median(runs: Sequence[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> float:
    """Median of ``value`` over ``runs``."""
    return float(statistics.median(value(run) for run in runs))


def _si(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"


def original_of(workload: Workload) -> str | None:
    """The name of the workload's external kind named :data:`ORIGINAL`, if it has one."""
    return next(
        (v.name for v in workload.variants if v.external and v.name.split(" ×")[0] == ORIGINAL),
        None,
    )


def rows(
    workload: Workload, runs: dict[str, list[dict[str, Any]]], with_original: bool = False
) -> list[list[str]]:
    """Table cells of one workload (medians); ``with_original`` adds the ``÷ original`` cell."""
    key, unit = workload.per or ("ops", workload.op)

    def rate(run: dict[str, Any]) -> float:
        return float(run["ops"]) / float(run["seconds"])

    floor = next((v.name for v in workload.variants if v.floor), None)
    floor_rate = median(runs[floor], rate) if floor is not None else None
    original = original_of(workload)
    original_rate = median(runs[original], rate) if original is not None else None
    cells = []
    for variant in workload.variants:
        done = runs[variant.name]
        throughput = median(done, rate)
        cpu = median(done, lambda r: r["cpu_s"] / max(r["ops"], 1) * 1e6)
        redis = "–"
        if variant.redis:
            calls = median(done, lambda r: r["redis_calls"] / max(r[key], 1))
            scripts = median(done, lambda r: r["redis_scripts"] / max(r[key], 1))
            redis = f"{calls:.2f}/{unit} ({scripts:.2f} scripts)"
        ratio = f"{throughput / floor_rate:.2f}" if floor_rate else "–"
        ratios = [ratio]
        if with_original:
            ratios.append(f"{throughput / original_rate:.2f}" if original_rate else "–")
        notes = []
        if key == "publishes":
            per_s = median(done, lambda r: r["publishes"] / r["seconds"])
            notes.append(f"{per_s:.0f} {unit}/s")
        if workload.op == "conn":
            per_conn = median(done, lambda r: r["rss_delta"] / max(r["ops"], 1) / 1024)
            notes.append(f"idle RSS {per_conn:.1f} KB/conn")
            failures = sum(r["failures"] for r in done)
            if failures:
                notes.append(f"{failures} failed")
        if "lost" in done[0]:
            notes.append(
                "final version " + "/".join(str(r["version"]) for r in done)
                + ", lost " + "/".join(str(r["lost"]) for r in done)
            )  # fmt: skip
        cells.append(
            [
                f"  {variant.name}",
                f"{_si(throughput)} {workload.op}/s",
                f"{median(done, lambda r: r['p50_ms']):.2f}",
                f"{median(done, lambda r: r['p99_ms']):.2f}",
                f"{cpu:.1f}",
                redis,
                *ratios,
                f"{median(done, lambda r: r['client_cpu']):.2f}",
                "; ".join(notes),
            ]
        )
    return cells


HEADER = ["workload / server", "throughput", "p50 ms", "p99 ms", "CPU µs/op", "Redis cmds",
          "÷ node", "client", "notes"]  # fmt: skip


def render(results: Sequence[tuple[Workload, dict[str, list[dict[str, Any]]]]]) -> str:
    """The table of every workload's rows, as aligned text."""
    with_original = any(original_of(workload) for workload, _ in results)
    header = list(HEADER)
    if with_original:
        header.insert(header.index("÷ node") + 1, "÷ original")
    table: list[list[str] | str] = []
    for workload, runs in results:
        table.append(workload.title)
        table += rows(workload, runs, with_original)
    widths = [len(h) for h in header]
    for line in table:
        if isinstance(line, list):
            widths = [max(w, len(c)) for w, c in zip(widths, line, strict=True)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out.append("-" * len(out[0]))
    for line in table:
        if isinstance(line, str):
            out.append(line)
        else:
            cells = [line[0].ljust(widths[0])]
            cells += [c.rjust(w) for c, w in zip(line[1:-1], widths[1:-1], strict=True)]
            out.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(out)


def run_suite(
    mode: Mode,
    selected: Sequence[str] = (),
    log: Callable[[str], None] = print,
    externals: Sequence[str] = (),
) -> str:
    """Run the suite (workloads whose title contains any of ``selected``; all if empty).

    ``externals`` are ``NAME=CMD`` specs of external server kinds (see :func:`workloads`).
    """
    node = node_floor()
    chosen = [
        w
        for w in workloads(node, externals)
        if not selected or any(word in w.title for word in selected)
    ]
    started = time.monotonic()
    results = [(w, run_workload(w, mode, log)) for w in chosen]
    load = os.getloadavg()
    lines = [
        "",
        f"mesh-py benchmark, {mode.name} mode: {mode.repetitions} repetition(s) of "
        f"{mode.duration:g} s windows (after {mode.warmup:g} s warm-up), medians; "
        f"{time.monotonic() - started:.0f} s wall; load average {load[0]:.2f} {load[1]:.2f}, "
        f"{os.cpu_count()} CPUs.",
    ]
    if node is None:
        lines.append(
            "!!! NODE FLOOR MISSING: `node` or bench/node/node_modules/ws not found (run "
            "`make bench`, which runs `npm ci` in bench/node). Rows have no ÷ node ratio. !!!"
        )
    lines += [render(results), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", action="append", default=[], help="run workloads whose title has this word"
    )
    parser.add_argument("--full", action="store_true", help="release-notes mode (BENCH=full)")
    parser.add_argument(
        "--external",
        action="append",
        default=[],
        metavar="NAME=CMD",
        help=f"an external server kind printing READY <port> (also {EXTERNAL_ENV}, ';'-separated)",
    )
    args = parser.parse_args(argv)
    mode = FULL if args.full or os.environ.get("BENCH") == "full" else QUICK
    from_env = [s for s in os.environ.get(EXTERNAL_ENV, "").split(";") if s.strip()]
    externals = [*from_env, *args.external]
    for spec in externals:
        try:
            external(spec)  # a malformed spec fails now, not after an hour of measuring
        except ValueError as error:
            parser.error(str(error))
    print(run_suite(mode, args.only, externals=externals))
