"""``python -m examples.tictactoe``: start the server on a free port, play one game, exit."""

from __future__ import annotations

import asyncio
import logging

from examples.tictactoe.client import run_tour
from examples.tictactoe.server import build_server


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    async with build_server() as server:
        print(f"tic-tac-toe server on {server.url} (embedded memory backend)", flush=True)
        for line in await run_tour(server.url):
            print(line, flush=True)
    print("tic-tac-toe example finished", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
