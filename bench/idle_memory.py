"""Where the bytes of an idle connection go: ``python -m bench.idle_memory [--transport T]``.

Starts a :class:`~mesh_server.MeshServer` (memory backend, default liveness settings) in this
process, opens ``--connections`` idle connections from a load-generator process
(``python -m bench.client storm``), and prints

* the RSS growth per connection (``VmRSS``; run with ``--no-trace`` for the figure without
  tracemalloc's own overhead), and
* the top allocation sites of the Python heap (tracemalloc, grouped by source line), in bytes
  and objects per connection.

C-level buffers that bypass Python's allocator (e.g. the kernel's socket buffers) only show in
RSS. Issue 12 targets ≤ 10 KB per idle connection on websockets and ≤ 8 KB on picows. Both
processes raise RLIMIT_NOFILE to its hard limit, so ``--connections 10000`` needs a hard limit
above 10 000 and loopback's ephemeral ports (``net.ipv4.ip_local_port_range``) are enough.
Measured (Python 3.11, picows 2.3, --no-trace): websockets 7.09 KB at 5 000, 6.98 KB at 10 000;
picows 9.94 KB at 5 000, 9.87 KB at 10 000 (~4 KB of it picows' own per-connection buffers and
upgrade objects, see :mod:`mesh_server.transport.picows`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tracemalloc
from typing import TYPE_CHECKING

from bench.harness import rss_bytes
from bench.servers import raise_fd_limit, run_loop

if TYPE_CHECKING:
    from mesh_server import MeshServer


def _count_opened(server: MeshServer, connections: int) -> asyncio.Event:
    """An event set once ``connections`` connections have opened on ``server``."""
    opened = asyncio.Event()
    count = 0

    def on_connection(connection: object) -> None:
        nonlocal count
        count += 1
        if count >= connections:
            opened.set()

    server.on_connection(on_connection)
    return opened


async def measure(transport: str, connections: int, top: int, trace: bool) -> None:
    """Open ``connections`` idle connections to a fresh server and print where memory went."""
    from mesh_server import MeshServer

    server = MeshServer(port=0, transport=transport)
    all_open = _count_opened(server, connections)
    await server.start()
    pid = os.getpid()
    try:
        gc.collect()
        if trace:
            tracemalloc.start(1)
        before_rss = rss_bytes(pid)
        before = tracemalloc.take_snapshot() if trace else None
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.client",
            "storm",
            "--url",
            server.url,
            "--connections",
            str(connections),
            "--in-flight",
            "200",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert client.stdout is not None
        assert client.stdin is not None
        while (await client.stdout.readline()).strip() not in (b"IDLE", b""):
            pass
        # The client reports IDLE once its handshakes are done; the server opens each
        # connection a moment later (backend registration, assign-id).
        await asyncio.wait_for(all_open.wait(), 60)
        await asyncio.sleep(0.5)
        gc.collect()
        opened = len(server.connections.local())
        after_rss = rss_bytes(pid)
        print(f"transport {transport}: {opened} idle connections")
        label = "with tracemalloc overhead" if trace else "no tracemalloc"
        print(f"RSS growth: {(after_rss - before_rss) / opened / 1024:.2f} KB/conn ({label})")
        if before is not None:
            after = tracemalloc.take_snapshot()
            _print_top(after.compare_to(before, "lineno"), opened, top)
        client.stdin.write(b"close\n")
        await client.stdin.drain()
        await client.communicate()
    finally:
        if trace:
            tracemalloc.stop()
        await server.close()


def _print_top(stats: list[tracemalloc.StatisticDiff], opened: int, top: int) -> None:
    total = sum(stat.size_diff for stat in stats)
    print(f"Python heap growth: {total / opened / 1024:.2f} KB/conn; top sites (bytes/conn):")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        per = stat.size_diff / opened
        objects = stat.count_diff / opened
        print(f"  {per:8.0f} B  {objects:5.2f} obj  {frame.filename}:{frame.lineno}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_memory", description=__doc__)
    parser.add_argument("--transport", default="websockets", help="websockets or picows")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--top", type=int, default=15, help="allocation sites to print")
    parser.add_argument("--no-trace", action="store_true", help="RSS only, without tracemalloc")
    args = parser.parse_args(argv)
    raise_fd_limit()
    run_loop(measure(args.transport, args.connections, args.top, not args.no_trace))


if __name__ == "__main__":
    main()
