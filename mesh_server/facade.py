"""Runtime base classes of generated server facades (codegen's ``server.py``; contract/README.md).

A generated ``<Name>Server(server)`` binds its contract to a :class:`~mesh_server.MeshServer` and
offers one typed registration per contract command, and one typed family object per channel and
record family of the contract. Generated stubs are thin (a typed signature and one delegating
call, STYLE.md "Generated code"); the behaviour lives here::

    app = ChatServer(MeshServer(port=8080))

    @app.commands.send_message
    async def send_message(
        ctx: Context[SendMessageRequest], request: SendMessageRequest
    ) -> SendMessageResponse: ...

    app.channels.chat.expose(guard=is_member)
    await app.channels.chat.publish(room="lobby", message=ChatMessage(...), history=50)
    topic, version = await app.records.room_topic.get(room="lobby")
    topic, version = await app.records.room_topic.update(room="lobby", fn=retitle)

This module imports only the server's public API and :mod:`mesh_sdk.protocol` (never the SDK's
client side), so a server application does not load the client.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, cast

from pydantic import BaseModel

from mesh_sdk.protocol.contract import ChannelSpec, ContractIndex, RecordSpec
from mesh_server.context import Context
from mesh_server.exposure import _takes_value

if TYPE_CHECKING:
    from mesh_server.exposure import Guard, WriteGuard
    from mesh_server.middleware import Middleware
    from mesh_server.server import MeshServer

__all__ = [
    "ChannelFamily",
    "CommandHandler",
    "CommandRegistry",
    "FacadeServer",
    "RecordFamily",
    "RecordUpdater",
]

RequestT = TypeVar("RequestT", bound=BaseModel)
ResponseT = TypeVar("ResponseT", bound=BaseModel)
ModelT = TypeVar("ModelT", bound=BaseModel)

RecordUpdater: TypeAlias = Callable[[ModelT | None], "ModelT | Awaitable[ModelT]"]
"""``fn(current) -> new`` (or its awaitable) of a typed record update; ``current`` is ``None``
when the record is absent. It may run more than once (see ``MeshServer.update_record``)."""

CommandHandler: TypeAlias = Callable[
    [Context[RequestT], RequestT], "ResponseT | Awaitable[ResponseT]"
]
"""``(ctx, request) -> response`` or its awaitable: a typed handler of one contract command.

``request`` is the validated request model (also ``ctx.payload``); the returned model is the
response (validated against the contract before it is sent).
"""


class CommandRegistry:
    """Base of generated ``<Name>ServerCommands``: registers typed handlers on the server."""

    __slots__ = ("_server",)

    def __init__(self, server: MeshServer) -> None:
        self._server = server

    def _register(
        self,
        name: str,
        handler: CommandHandler[RequestT, ResponseT],
        middlewares: Sequence[Middleware],
    ) -> CommandHandler[RequestT, ResponseT]:
        """Expose ``handler`` as command ``name``; return it unchanged (decorator use).

        Raises:
            TypeError: ``handler`` or a middleware is not callable.
        """
        if not callable(handler):
            raise TypeError(f"handler of {name!r} must be callable")

        def run(ctx: Context[Any]) -> Any:
            # The pipeline validated ctx.payload against the contract (protocol.md §3.4 step 3).
            return handler(ctx, ctx.payload)

        self._server.expose_command(name, run, middlewares)
        return handler


class _Family:
    """What channel and record families share: the server and the contract's name rules."""

    __slots__ = ("_server", "_spec")

    def __init__(self, server: MeshServer, spec: ChannelSpec | RecordSpec) -> None:
        self._server = server
        self._spec = spec

    @property
    def pattern(self) -> re.Pattern[str]:
        """The contract's anchored, full-match pattern of the family's names (channels or ids)."""
        return self._spec.pattern

    @property
    def template(self) -> str:
        """The contract's name template (e.g. ``chat:{room}`` or ``topic:{room}``)."""
        return self._spec.template


class ChannelFamily(_Family, Generic[ModelT]):
    """Base of a generated channel family: exposure with the contract's pattern, typed publish."""

    __slots__ = ("spec",)

    def __init__(self, server: MeshServer, spec: ChannelSpec) -> None:
        super().__init__(server, spec)
        self.spec = spec

    def expose(self, guard: Guard | None = None) -> None:
        """Let clients subscribe to every channel of the family (protocol.md §9.1).

        Args:
            guard: ``(connection, channel) -> bool`` (or awaitable) deciding each subscription;
                ``None`` admits everyone.
        """
        self._server.channels.expose(self.spec.pattern, guard)

    async def _publish(self, channel: str, message: ModelT, history: int) -> None:
        # The server validates against the contract's channel schema (protocol.md §9.5).
        await self._server.channels.publish(channel, message, history)


class RecordFamily(_Family, Generic[ModelT]):
    """Base of a generated record family: exposure, typed reads and writes."""

    __slots__ = ("spec",)

    def __init__(self, server: MeshServer, spec: RecordSpec) -> None:
        super().__init__(server, spec)
        self.spec = spec

    @property
    def writable(self) -> bool:
        """Whether the contract lets clients write these records (``x-mesh-writable``)."""
        return self.spec.writable

    def expose(self, guard: WriteGuard | None = None) -> None:
        """Let clients subscribe to (and, if :attr:`writable`, write) the family's records.

        Args:
            guard: ``(connection, record_id) -> bool`` (or awaitable) deciding each access;
                ``None`` admits everyone (protocol.md §11.1). A writable family's guard may take
                the value being written instead, ``(connection, record_id, value)``, as with
                :meth:`mesh_server.records.RecordManager.expose_writable`.

        Raises:
            TypeError: A value-taking guard for a family clients cannot write.
        """
        if self.spec.writable:
            self._server.records.expose_writable(self.spec.pattern, guard)
            return
        if guard is not None and _takes_value(guard):
            raise TypeError(f"{self.spec.template} is not writable: its guard takes no value")
        # A guard that takes no value is a read guard (checked just above).
        self._server.records.expose(self.spec.pattern, cast("Guard | None", guard))

    async def _get(self, record_id: str) -> tuple[ModelT | None, int]:
        """Return ``(value, version)``, ``(None, 0)`` when absent.

        Raises:
            ValidationError: The stored value violates the record's schema (written without
                the contract).
        """
        value, version = await self._server.records.get(record_id)
        if value is None:
            return None, version
        return cast("ModelT", self.spec.validate_value(value)), version

    async def _publish(self, record_id: str, value: ModelT, expected_version: int | None) -> None:
        await self._server.records.publish_update(
            record_id, value, expected_version=expected_version
        )

    async def _update(self, record_id: str, fn: RecordUpdater[ModelT]) -> tuple[ModelT, int]:
        """Run :meth:`mesh_server.records.RecordManager.update` with models on both sides of ``fn``.

        Raises:
            ValidationError: The current or the new value violates the record's schema.
        """
        validate = self.spec.validate_value

        async def typed(current: Any) -> Any:
            result = fn(None if current is None else validate(current))
            if inspect.isawaitable(result):
                result = await result
            return result

        written = await self._server.records.update(record_id, typed)
        return cast("ModelT", validate(written.value)), written.version

    async def _delete(self, record_id: str) -> None:
        await self._server.records.delete(record_id)


class FacadeServer:
    """Base of generated ``<Name>Server``: the wrapped server, bound to the contract.

    Binding (:meth:`mesh_server.MeshServer.bind_contract`) makes validation the default at the
    server end: ``ChatServer(MeshServer())`` validates exactly like
    ``MeshServer(contract=CONTRACT)``, and :meth:`~mesh_server.MeshServer.start` refuses to start
    while a contract command has no handler.

    Raises:
        ValueError: The server is bound to a different contract, or has commands the contract
            does not define.
        RuntimeError: The server was already started.
    """

    def __init__(self, server: MeshServer, contract: ContractIndex) -> None:
        server.bind_contract(contract)
        self.server = server
        self.contract = contract

    @property
    def unimplemented(self) -> list[str]:
        """Wire names of the contract's commands that have no handler yet (sorted)."""
        return self.server.unimplemented_commands()
