"""Loading the Lua scripts of ``lua/`` and running them with ``EVALSHA``.

Each script file starts with a header comment listing its KEYS and ARGV. ``lib.lua`` is a
prelude of shared helpers prepended to every script, so the text Redis caches is prelude +
script. Scripts are loaded once at start (``SCRIPT LOAD``) and run with ``EVALSHA``; redis-py's
:class:`~redis.commands.core.AsyncScript` reloads a script when Redis answers ``NOSCRIPT`` (e.g.
after a restart or ``SCRIPT FLUSH``) and retries it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any, Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

__all__ = ["SCRIPT_NAMES", "Scripts"]

SCRIPT_NAMES: Final = (
    "claim_instance",
    "clear_presence_state",
    "clear_room",
    "heartbeat",
    "join_room",
    "leave_room",
    "metadata_cas",
    "publish_channel",
    "record_commit",
    "record_delete",
    "refresh_presence",
    "register_connections",
    "release_instance",
    "send_to_connection",
    "set_presence_state",
    "sweep_presence",
    "unregister_connection",
)

_LUA = resources.files(__package__) / "lua"


def script_source(name: str) -> str:
    """Return the text sent to Redis for ``name``: the shared prelude followed by the script."""
    prelude = (_LUA / "lib.lua").read_text(encoding="utf-8")
    return prelude + (_LUA / f"{name}.lua").read_text(encoding="utf-8")


class Scripts:
    """The registered scripts of one client, callable by name."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    async def load_all(self) -> None:
        """``SCRIPT LOAD`` every script (one pipeline round trip)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for script in self._scripts.values():
                pipe.script_load(script.script)
            await pipe.execute()

    async def run(self, name: str, keys: Sequence[str], *args: str | bytes | int) -> Any:
        """Run script ``name`` with ``EVALSHA``; the namespace is always ``ARGV[1]``."""
        return await self._scripts[name](keys=list(keys), args=[self._namespace, *args])
