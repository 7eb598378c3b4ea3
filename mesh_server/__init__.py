"""mesh-py server: a contract-first, real-time WebSocket framework speaking the Mesh protocol.

Quick start::

    from mesh_server import MeshServer

    server = MeshServer(port=8080)

    @server.command("echo")
    async def echo(ctx):
        return ctx.payload

    asyncio.run(server.serve_forever())
"""

from mesh_server.connection import Connection
from mesh_server.context import Context
from mesh_server.errors import (
    CommandNotFoundError,
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
