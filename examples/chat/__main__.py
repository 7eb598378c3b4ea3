"""``python -m examples.chat``: start the chat server on a free port, run the tour, exit."""

from __future__ import annotations

import asyncio
import logging

from examples.chat.client import run_tour
from examples.chat.server import build_server


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    async with build_server() as server:
        print(f"chat server on {server.url} (embedded memory backend)", flush=True)
        for line in await run_tour(server.url):
            print(line, flush=True)
    print("chat example finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
