"""mesh-py server: a contract-first, real-time WebSocket framework speaking the Mesh protocol.

Quick start::

    from mesh_server import MeshServer

    server = MeshServer(port=8080)

    @server.command("echo")
    async def echo(ctx):
        return ctx.payload

    asyncio.run(server.serve_forever())
"""

# Exports load on first access (PEP 562), so ``import mesh_server.session`` (the sans-I/O core)
# does not pull in asyncio, websockets and the whole server through this package.

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mesh_server.connection import Connection
    from mesh_server.context import Context
    from mesh_server.errors import (
        CommandNotFoundError,
        ConflictError,
        ForbiddenError,
        MeshAuthError,
        MeshError,
        RateLimitError,
        ServerError,
        TooLargeError,
        UnavailableError,
        UnknownError,
        ValidationError,
    )
    from mesh_server.limits import Limits
    from mesh_server.server import MeshServer
    from mesh_server.transport.base import UpgradeRequest

__all__ = [
    "CommandNotFoundError",
    "ConflictError",
    "Connection",
    "Context",
    "ForbiddenError",
    "Limits",
    "MeshAuthError",
    "MeshError",
    "MeshServer",
    "RateLimitError",
    "ServerError",
    "TooLargeError",
    "UnavailableError",
    "UnknownError",
    "UpgradeRequest",
    "ValidationError",
]

_MODULES = {
    "mesh_server.connection": ("Connection",),
    "mesh_server.context": ("Context",),
    "mesh_server.errors": (
        "CommandNotFoundError",
        "ConflictError",
        "ForbiddenError",
        "MeshAuthError",
        "MeshError",
        "RateLimitError",
        "ServerError",
        "TooLargeError",
        "UnavailableError",
        "UnknownError",
        "ValidationError",
    ),
    "mesh_server.limits": ("Limits",),
    "mesh_server.server": ("MeshServer",),
    "mesh_server.transport.base": ("UpgradeRequest",),
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'mesh_server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
