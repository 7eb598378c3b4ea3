"""A plain HTTP/1.1 client for probes on the WebSocket port (health endpoints, refusals)."""

from __future__ import annotations

import asyncio

from tests.support.timing import wait_for


async def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``GET path`` (no upgrade) to 127.0.0.1 and read the answer until the server closes.

    Returns:
        The status, the headers (lower-case names) and the body.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
    data = await wait_for(reader.read())
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body
