"""Hostile-input fuzzing over real sockets against a real MeshServer, on both backends (issue 8).

The server runs in its own process (its RSS and its log are its own); lanes of raw websockets
clients send seeded mutated frames (:mod:`tests.fuzz.frames`) and check every answer and push
(:mod:`tests.fuzz.harness`). Assertions: every frame with a usable id is answered with a
documented shape; only the close codes the frames call for (1008, 1009); no traceback, no
``ERROR`` line and no "Task exception was never retrieved" in the server's log, and no more lines
than connections warrant; RSS bounded; a fresh connection is answered at the end, and so is a
final request on each lane's connection.

The default is the CI slice; ``make fuzz N=100000 SEED=7`` runs a long one (``N`` frames per
backend; ``BACKEND=redis`` for one backend). Environment: ``MESH_FUZZ_FRAMES``,
``MESH_FUZZ_SEED``, ``MESH_FUZZ_LANES``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.fuzz.frames import BUILTIN_COMMANDS, SAMPLES, FrameFactory
from tests.fuzz.harness import Report, run_lanes, scan_log
from tests.support.raw_client import RawClient
from tests.support.timing import FACTOR, TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
FRAMES = int(os.environ.get("MESH_FUZZ_FRAMES", "3000"))
SEED = int(os.environ.get("MESH_FUZZ_SEED", "20261204"))
LANES = int(os.environ.get("MESH_FUZZ_LANES", "8"))
RSS_GROWTH_LIMIT = 96 * 1024 * 1024
"""Bytes the server's resident set may grow by over a run (it holds no per-frame state)."""

pytestmark = [pytest.mark.fuzz, pytest.mark.integration]


def rss(pid: int) -> int:
    """Resident set size of a process in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@asynccontextmanager
async def fuzz_server(redis_url: str | None, log: Path) -> AsyncIterator[tuple[str, int]]:
    """Run ``tests.fuzz.server`` in its own process, its log (stderr) going to ``log``."""
    args = ["--redis-url", redis_url] if redis_url is not None else []
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fuzz.server",
            *args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 10 * TIMEOUT)
            assert line.startswith(b"READY "), "the fuzz server did not start (see its log)"
            yield f"ws://127.0.0.1:{int(line.split()[1])}", proc.pid
        finally:
            if proc.returncode is None:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), 10 * TIMEOUT)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str | None:
    """``None`` (memory backend) or the URL of the session's private Redis."""
    if request.param == "memory":
        return None
    return str(request.getfixturevalue("redis_url"))


def test_every_builtin_has_a_valid_sample() -> None:
    assert set(BUILTIN_COMMANDS) <= set(SAMPLES)
    # The list really comes from contract/mesh (19 commands since mesh/contract-info).
    assert len(BUILTIN_COMMANDS) >= 19
    assert "mesh/contract-info" in BUILTIN_COMMANDS


def test_frames_are_reproducible() -> None:
    first, second = FrameFactory(5), FrameFactory(5)
    assert [first.next() for _ in range(300)] == [second.next() for _ in range(300)]
    assert len(first.counts) >= 10  # every kind of mutation shows up early


def summary(report: Report, rss_start: int, rss_end: int, log_lines: int) -> str:
    return (
        f"fuzz: {report.frames} frames, {report.answers} answers, {report.pushes} pushes, "
        f"{report.connections} connections, closes {dict(report.closes)}, "
        f"{report.excused} excused, {len(report.unanswered)} unanswered, "
        f"{len(report.problems)} problems, codes {dict(report.codes)}, "
        f"RSS {rss_start >> 20} → {rss_end >> 20} MiB, {log_lines} log lines, "
        f"mutations {dict(report.mutations)}"
    )


@pytest.mark.slow
@pytest.mark.timeout(120 + int(FRAMES / 50 * FACTOR))
async def test_hostile_frames(backend: str | None, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    async with fuzz_server(backend, log) as (url, pid):
        rss_start = rss(pid)
        report = await run_lanes(url, FRAMES, LANES, SEED)
        rss_end = rss(pid)
        async with RawClient.open(url) as fresh:
            assert (await fresh.request("fresh", "echo", "ok"))["payload"] == "ok"
    log_lines, bad_lines = scan_log(log)
    print(summary(report, rss_start, rss_end, log_lines))
    print("\n".join(report.problems[:30] + report.unanswered[:30] + bad_lines[:30]))
    assert report.frames == FRAMES
    assert report.problems == []
    assert report.unanswered == []
    assert bad_lines == []
    # websockets logs each connection's open and close; bad input adds one line per interval.
    assert log_lines <= 2 * (report.connections + 1) + 20
    assert set(report.closes) <= {1000, 1008, 1009}
    assert rss_end - rss_start < RSS_GROWTH_LIMIT
