"""Commands and the request plumbing of :class:`~mesh_sdk.client.MeshClient` (protocol.md §3–§6).

:class:`ClientCommands` drives the sans-I/O :class:`~mesh_sdk.session.ClientSession` from asyncio:
:meth:`~ClientCommands.command` and the subscriptions' requests become pending entries whose
futures the session's events resolve; inbound frames are fed to the session and its events acted
on (responses, pushes routed to handlers and subscriptions, ``mesh/assign-id`` starting the
restore of §14, the ping watchdog); one ``loop.call_at`` timer wakes the session at its next
deadline (request expiry, watchdog). Sockets, connect, close and reconnect are
:class:`~mesh_sdk.lifecycle.ClientLifecycle`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.errors import (
    ContractViolationError,
    LocalValidationError,
    MeshConnectionError,
    ValidationError,
)
from mesh_sdk.session import SessionState
from mesh_sdk.session_events import (
    Assigned,
    Event,
    Failed,
    Ignored,
    LatencyChanged,
    PushReceived,
    Resolved,
    WatchdogExpired,
)
from mesh_sdk.subscriptions.api import SubscriptionAPI

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from mesh_sdk.events import Callback
    from mesh_sdk.protocol.contract import ContractIndex
    from mesh_sdk.session import ClientSession

__all__ = ["ClientCommands", "check_seconds"]

logger = logging.getLogger("mesh_sdk")


def check_seconds(name: str, seconds: float | None) -> None:
    """Refuse a negative (or NaN) duration; ``None`` (no limit) passes.

    Raises:
        ValueError: ``seconds`` is negative or NaN.
    """
    if seconds is not None and not seconds >= 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, not {seconds!r}")


class _Handle:
    """What the session carries for each request: the caller's future and an inline hook."""

    __slots__ = ("future", "on_result")

    def __init__(self, future: asyncio.Future[Any], on_result: Callable[[Any], Any] | None) -> None:
        self.future = future
        self.on_result = on_result


class ClientCommands(SubscriptionAPI):
    """Commands, the session's events and its timer; the middle layer of ``MeshClient``."""

    # Provided by MeshClient.
    url: str
    _session: ClientSession[_Handle]
    _command_timeout: float | None
    _push_handlers: dict[str, list[Callback]]
    _ws: ClientConnection | None
    _ready: asyncio.Future[None] | None
    _restore_task: asyncio.Task[None] | None
    _local_abort: bool
    _timer: asyncio.TimerHandle | None
    _timer_at: float | None
    _background: set[asyncio.Task[Any]]

    # ----------------------------------------------------------------------------------------
    # Requests

    def bind_contract(self, contract: ContractIndex) -> None:
        """Validate against ``contract`` from now on (what generated client facades call).

        Requests are then checked before sending and responses, pushes, channel messages and
        record values after receiving, exactly as with ``MeshClient(url, contract=…)``.

        Raises:
            ValueError: The client is already bound to a different contract.
        """
        current = self.contract
        if current is None:
            self.contract = contract
        elif current is not contract and current.name != contract.name:
            raise ValueError(f'client is bound to contract "{current.name}", not "{contract.name}"')

    async def command(
        self,
        name: str,
        payload: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - seconds, enforced by the session
    ) -> Any:
        """Send a command and return its result (protocol.md §3.4–§4).

        While the client is reconnecting, the command waits in the offline queue and is sent
        after re-subscription, in issue order; it expires ``timeout`` seconds after this call
        either way. A command in flight when the socket drops fails with ``ECONNECTION`` and is not
        resent (it may have run).

        Args:
            name: The command name.
            payload: JSON value or pydantic model (``None`` sends ``{}``, as JS clients do).
            timeout: Seconds to wait for the response (default: ``command_timeout``; ``5``
                waits five seconds).

        Returns:
            The response payload; with a contract that declares ``name``, the validated
            response model.

        Raises:
            MeshError: The typed error of an error response (e.g. ``ValidationError``,
                ``ForbiddenError``, ``CommandNotFoundError``, or a plain ``MeshError`` keeping an
                application code).
            LocalValidationError: With a contract: the request violates its schema and was
                not sent (a :class:`ValidationError`, so one ``except`` catches both sides).
            ContractViolationError: With a contract: the response violates its schema (the
                server broke the contract; a :class:`ServerError`).
            MeshTimeoutError: No response in time (``ETIMEOUT``).
            MeshConnectionError: Not connected and not reconnecting, or the connection was lost
                with the command in flight (``ECONNECTION``).
            ValueError: ``timeout`` is negative.
        """
        check_seconds("timeout", timeout)
        spec = self.contract.command(name) if self.contract is not None else None
        wire_payload = to_jsonable({} if payload is None else payload)
        if spec is None:
            return await self._call(name, wire_payload, timeout=timeout)
        try:
            spec.validate_request(wire_payload)
        except ValidationError as exc:
            raise LocalValidationError.refused(exc) from None
        result = await self._call(name, wire_payload, timeout=timeout)
        try:
            return spec.read_response(result, strict=self._strict_readers)
        except ValidationError as exc:
            raise ContractViolationError.broke(exc) from None

    async def _call(
        self,
        command: str,
        payload: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        internal: bool = False,
        on_result: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Send one request and wait for its outcome.

        Args:
            command: Command name.
            payload: JSON payload.
            timeout: Seconds (default ``command_timeout``).
            internal: Re-subscription traffic: bypasses the offline queue (§14).
            on_result: Runs inline in the reader on success; its return value is the result.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        effective = self._command_timeout if timeout is None else timeout
        pending = self._session.request(
            command, payload, _Handle(future, on_result), self._now(), effective, internal=internal
        )
        self._reschedule_timer()
        try:
            if not pending.queued:
                await self._send(pending.frame)
            return await future
        except BaseException:
            # Cancelled, or the socket vanished before sending: forget it (no-op if answered).
            self._session.cancel(pending.id)
            raise

    async def _send(self, frame: bytes) -> None:
        ws = self._ws
        if ws is None:
            raise MeshConnectionError("not connected")
        # On ConnectionClosed the reader fails the requests in flight with ECONNECTION.
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame, text=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ----------------------------------------------------------------------------------------
    # Inbound frames and session events

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _receive(self, message: str | bytes) -> None:
        for event in self._session.receive(message, self._now()):
            self._handle_event(event)

    async def _flush_outbox(self, ws: ClientConnection) -> None:
        for frame in self._session.data_to_send():
            try:
                await ws.send(frame, text=True)
            except ConnectionClosed:
                return

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, Resolved):
            self._resolve(event.pending.handle, event.payload)
        elif isinstance(event, Failed):
            future = event.pending.handle.future
            if not future.done():
                future.set_exception(event.error)
        elif isinstance(event, PushReceived):
            self._route_push(event.command, event.payload)
        elif isinstance(event, Assigned):
            self._on_assigned(event)
        elif isinstance(event, LatencyChanged):
            self._emitter.emit("latency", event.latency)
        elif isinstance(event, WatchdogExpired):
            self._on_watchdog()
        elif isinstance(event, Ignored):
            logger.debug("ignored frame: %s", event.reason)

    def _resolve(self, handle: _Handle, payload: Any) -> None:
        if handle.future.done():
            return
        if handle.on_result is not None:
            # Runs inline, before the next frame is processed, so a subscription's state is
            # current before any push that follows its response (§9.3, §10.4, §11.5).
            try:
                payload = handle.on_result(payload)
            except Exception as exc:
                handle.future.set_exception(exc)
                return
        handle.future.set_result(payload)

    def _on_assigned(self, event: Assigned) -> None:
        self._emitter.emit("connect", event.connection_id)
        if event.reconnected:
            self._emitter.emit("reconnect", event.connection_id)
        self._reschedule_timer()
        task = asyncio.get_running_loop().create_task(
            self._restore(event.reconnected), name="mesh-sdk-restore"
        )
        self._restore_task = task

    async def _restore(self, reconnected: bool) -> None:
        """§14 after ``mesh/assign-id``: re-subscribe, then release queued commands in order."""
        try:
            if reconnected:
                await self._restore_subscriptions()
            while frames := self._session.mark_ready(self._now()):
                for frame in frames:
                    await self._send(frame)
        except MeshConnectionError:
            return  # the socket dropped meanwhile; the next connection restores again
        self._restore_task = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        if reconnected:
            self._emitter.emit("resubscribed")

    def _on_watchdog(self) -> None:
        ws = self._ws
        if ws is None:
            return
        if self._session.state is SessionState.CONNECTING:
            logger.warning("no mesh/assign-id from %s in time; reconnecting", self.url)
        else:
            logger.warning("no ping from %s in the watchdog period; reconnecting (§14)", self.url)
        self._local_abort = True
        ws.transport.abort()

    def _route_push(self, command: str, payload: Any) -> None:
        if command.startswith("mesh/"):
            self._route_mesh_push(command, payload)
            return
        handlers = self._push_handlers.get(command)
        self._emitter.emit("push", command, payload)
        if not handlers:
            return
        spec = self.contract.push(command) if self.contract is not None else None
        if spec is not None:
            try:
                payload = spec.read_payload(payload, strict=self._strict_readers)
            except ValidationError as exc:
                violation = ContractViolationError.broke(exc)
                logger.warning("dropping push %r: %s", command, violation)
                self._emitter.emit("error", violation)
                return
        for handler in list(handlers):
            self._dispatcher.call(handler, payload)

    # ----------------------------------------------------------------------------------------
    # Timer: request expiry and watchdog (one loop.call_at at the session's next deadline)

    def _reschedule_timer(self) -> None:
        deadline = self._session.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        fired_at = self._timer_at
        self._timer = self._timer_at = None
        now = self._now()
        if fired_at is not None:
            # call_at may fire up to one clock resolution early: it fired for this deadline.
            now = max(now, fired_at)
        for event in self._session.tick(now):
            self._handle_event(event)
        self._reschedule_timer()
