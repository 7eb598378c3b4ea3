"""Measure one point: fresh servers (and Redis), the load generator in its own process, probes.

A point starts its servers (each prints ``READY <port>``), a private redis-server when the
variant uses Redis, and :mod:`bench.client`. When the client prints ``START`` and ``STOP`` (or
``IDLE`` for the storm) the harness samples, for the server processes only:

* CPU: ``utime + stime`` from ``/proc/PID/stat``, so CPU per operation is the servers' cost;
* memory: ``VmRSS`` from ``/proc/PID/status`` (storm: before the first connection and once all
  are idle, giving RSS per idle connection);
* Redis: ``INFO commandstats`` call counts (``info`` itself excluded; commands a Lua script runs
  count too, as Redis counts them).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any

import redis

from bench.common import ROOT, RedisProcess

NODE_DIR = ROOT / "bench" / "node"


@dataclass(frozen=True)
class Variant:
    """One server configuration of a workload (a row of the table).

    Attributes:
        name: Row label.
        argv: The server's command line (it prints ``READY <port>``).
        redis: Whether the servers get ``--redis-url`` of a private Redis.
        instances: How many servers (clients spread over them round-robin).
        floor: Whether this is the Node floor that ratios are taken against.
        external: Whether this is an external server kind (see :func:`external`).
    """

    name: str
    argv: tuple[str, ...]
    redis: bool = False
    instances: int = 1
    floor: bool = False
    external: bool = False


def mesh(backend: str, transport: str, instances: int = 1) -> Variant:
    """A MeshServer variant on ``backend`` (``memory`` or ``redis``) and ``transport``."""
    suffix = f" ×{instances}" if instances > 1 else ""
    return Variant(
        name=f"mesh {backend} ({transport}){suffix}",
        argv=(sys.executable, "-m", "bench.servers", "mesh", "--transport", transport),
        redis=backend == "redis",
        instances=instances,
    )


def bare(library: str) -> Variant:
    """A bare Python floor (``websockets`` or ``picows``)."""
    return Variant(name=f"bare {library}", argv=(sys.executable, "-m", "bench.servers", library))


def external(spec: str, instances: int = 1) -> Variant:
    """An external server kind from ``NAME=CMD`` (``--external`` / ``MESH_BENCH_EXTERNAL``).

    ``CMD`` is split like a shell would (:func:`shlex.split`) but run directly, without a shell,
    so the process whose CPU and RSS are measured is the server itself. It must print
    ``READY <port>`` once it listens on 127.0.0.1 and expose the workloads of the ``mesh`` kind
    of :mod:`bench.servers`. Every point gives it a fresh private Redis: ``--redis-url URL`` is
    appended to ``CMD`` (a server that needs no Redis ignores it).

    Raises:
        ValueError: ``spec`` has no ``NAME=`` or no command.
    """
    name, sep, command = spec.partition("=")
    argv = tuple(shlex.split(command))
    if not sep or not name.strip() or not argv:
        raise ValueError(f"external server {spec!r} is not NAME=CMD")
    suffix = f" ×{instances}" if instances > 1 else ""
    return Variant(
        name=f"{name.strip()}{suffix}", argv=argv, redis=True, instances=instances, external=True
    )


def node_floor() -> Variant | None:
    """The bare Node ``ws`` floor, or ``None`` when node or its ``ws`` package is missing."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "ws").is_dir():
        return None
    return Variant(name="bare node ws", argv=(node, str(NODE_DIR / "server.js")), floor=True)


class Server:
    """A server subprocess that announced its port."""

    def __init__(self, argv: tuple[str, ...]) -> None:
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        # A server prints nothing but READY on stdout (logs go to stderr).
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"server {argv} exited before READY")
        self.url = f"ws://127.0.0.1:{int(line.split()[1])}/"

    def stop(self) -> None:
        """Terminate the server and reap it."""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS``), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


_SCRIPT_CALLS = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall")


def redis_calls(client: redis.Redis | None) -> tuple[int, int]:
    """Calls in ``INFO commandstats`` except ``info``, and how many were script calls.

    Redis also counts the commands a script runs, so the difference between the two is not
    all network round trips; the script calls are.
    """
    if client is None:
        return 0, 0
    stats: dict[str, Any] = client.info("commandstats")
    total = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    return total, sum(int(stats[k]["calls"]) for k in _SCRIPT_CALLS if k in stats)


@dataclass
class Sample:
    """Probe readings at one instant of a point."""

    cpu: float
    rss: int
    redis_calls: tuple[int, int]


def sample(servers: list[Server], stats: redis.Redis | None) -> Sample:
    """Read every probe now."""
    pids = [s.proc.pid for s in servers]
    return Sample(
        cpu=sum(cpu_seconds(pid) for pid in pids),
        rss=sum(rss_bytes(pid) for pid in pids),
        redis_calls=redis_calls(stats),
    )


def _expect(stream: IO[str], words: tuple[str, ...]) -> str:
    line = stream.readline().strip()
    if line not in words:
        raise RuntimeError(f"load generator said {line!r}, expected one of {words}")
    return line


def measure_point(variant: Variant, client_args: list[str]) -> dict[str, Any]:
    """Run one point of ``variant`` with ``python -m bench.client *client_args``.

    Returns the client's JSON result plus ``cpu_s``, ``redis_calls`` and ``redis_scripts``
    (see :func:`redis_calls`) over the measured window and ``rss_delta`` (bytes, from
    ``START`` to ``IDLE``; 0 for windows ending ``STOP``).
    """
    with ExitStack() as stack:
        stats: redis.Redis | None = None
        extra: tuple[str, ...] = ()
        if variant.redis:
            server_redis = stack.enter_context(RedisProcess())
            stats = stack.enter_context(redis.Redis.from_url(server_redis.url))
            extra = ("--redis-url", server_redis.url)
        servers: list[Server] = []
        for _ in range(variant.instances):
            servers.append(Server(variant.argv + extra))
            stack.callback(servers[-1].stop)
        argv = [sys.executable, "-m", "bench.client", *client_args]
        argv += ["--url", ",".join(s.url for s in servers)]
        client = stack.enter_context(
            subprocess.Popen(
                argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        )
        stack.callback(client.kill)
        assert client.stdout is not None
        assert client.stdin is not None
        _expect(client.stdout, ("START",))
        before = sample(servers, stats)
        end = _expect(client.stdout, ("STOP", "IDLE"))
        after = sample(servers, stats)
        if end == "IDLE":
            client.stdin.write("\n")
            client.stdin.flush()
        output = client.stdout.read()
        if client.wait(60) != 0:
            raise RuntimeError(f"load generator failed: {argv}")
        result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["cpu_s"] = after.cpu - before.cpu
    result["redis_calls"] = after.redis_calls[0] - before.redis_calls[0]
    result["redis_scripts"] = after.redis_calls[1] - before.redis_calls[1]
    result["rss_delta"] = after.rss - before.rss if end == "IDLE" else 0
    return result
