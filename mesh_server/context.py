"""The per-request context handed to middleware and command handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

if TYPE_CHECKING:
    from mesh_server.api import ServerAPI
    from mesh_server.connection import Connection

__all__ = ["Context", "RequestT"]

RequestT = TypeVar("RequestT", default=Any)
"""The type of :attr:`Context.payload`; a bare ``Context`` is ``Context[Any]``."""


class Context(Generic[RequestT]):
    """What a middleware or handler knows about one request.

    ``Context[Model]`` types :attr:`payload`: generated server facades hand their handlers a
    ``Context[<Command>Request]``; middleware and untyped handlers see a bare ``Context``.

    Middleware may set any other attribute (``ctx.user = ...``) for later middleware and the
    handler to read; unknown attributes read as an ``AttributeError`` like on any object.

    Attributes:
        command: The command name.
        payload: The request payload: the typed model when a contract defines the command (built-in
            ``mesh/*`` commands always), else the decoded JSON value (``{}`` when absent).
        raw_payload: The decoded JSON payload as received.
        connection: The calling connection.
        server: The :class:`~mesh_server.MeshServer` (typed as the part handlers use,
            :class:`~mesh_server.api.ServerAPI`).
        request_id: The client's request id (any JSON value).
    """

    def __init__(
        self,
        command: str,
        payload: RequestT,
        connection: Connection,
        server: ServerAPI,
        request_id: Any = None,
        raw_payload: Any = None,
    ) -> None:
        self.command = command
        self.payload = payload
        self.connection = connection
        self.server = server
        self.request_id = request_id
        self.raw_payload = raw_payload

    def __repr__(self) -> str:
        return f"Context(command={self.command!r}, connection={self.connection.id!r})"
