"""The asyncio Mesh client (protocol.md §14): connection, commands, liveness, reconnect.

:class:`MeshClient` is the asyncio adapter around the sans-I/O
:class:`~mesh_sdk.session.ClientSession`: it owns the socket, one reader task per socket, a
supervisor task that reconnects, and one timer (``loop.call_at``) for request expiry and the
ping watchdog. Subscriptions (channels, rooms,
presence, records) are in :class:`~mesh_sdk.subscriptions.api.SubscriptionAPI`, which it extends.

Usage::

    async with MeshClient("ws://localhost:8080") as client:
        print(await client.command("echo", {"hello": "world"}))
        record = await client.subscribe_record("doc:1", mode="patch", model=Doc)
        async for doc in record:
            ...

Every duration of the Python API is seconds as a ``float`` (``command(timeout=5)`` waits five
seconds), as in asyncio, websockets and redis-py; the wire keeps milliseconds, converted where a
frame is built or read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)
from websockets.uri import parse_uri

from mesh_sdk.errors import MeshAuthenticationError
from mesh_sdk.events import Callback, CallbackDispatcher, EventEmitter
from mesh_sdk.protocol.codec import DEFAULT_SDK_MAX_JSON_DEPTH
from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.errors import (
    ContractViolationError,
    LocalValidationError,
    MeshConnectionError,
    MeshError,
    ValidationError,
)
from mesh_sdk.reconnect import (
    UNAVAILABLE_STATUS,
    Backoff,
    should_reconnect,
    should_reconnect_after_status,
)
from mesh_sdk.session import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Assigned,
    ClientSession,
    Event,
    Failed,
    Ignored,
    LatencyChanged,
    PushReceived,
    Resolved,
    SessionState,
    WatchdogExpired,
)
from mesh_sdk.subscriptions.api import SubscriptionAPI
from mesh_sdk.subscriptions.base import DEFAULT_QUEUE_SIZE

if TYPE_CHECKING:
    from types import TracebackType

    from websockets.typing import LoggerLike

    from mesh_sdk.protocol.contract import ContractIndex

__all__ = ["EVENTS", "MeshClient"]

logger = logging.getLogger("mesh_sdk")

EVENTS = frozenset(
    {
        "connect",
        "disconnect",
        "reconnect",
        "reconnect_failed",
        "resubscribed",
        "close",
        "latency",
        "push",
        "error",
    }
)
"""Event names accepted by :meth:`MeshClient.on`."""


def _check_seconds(name: str, seconds: float | None) -> None:
    """Refuse a negative (or NaN) duration; ``None`` (no limit) passes."""
    if seconds is not None and not seconds >= 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, not {seconds!r}")


class _Handle:
    """What the session carries for each request: the caller's future and an inline hook."""

    __slots__ = ("future", "on_result")

    def __init__(self, future: asyncio.Future[Any], on_result: Callable[[Any], Any] | None) -> None:
        self.future = future
        self.on_result = on_result


class MeshClient(SubscriptionAPI):
    """A Mesh client with typed errors, automatic reconnect and re-subscription.

    Args:
        url: ``ws://`` or ``wss://`` URL of a Mesh server.
        contract: Optional :class:`~mesh_sdk.protocol.contract.ContractIndex`: command requests are
            validated before sending (an invalid one raises ``LocalValidationError``, never
            sent) and responses after receiving (returned as models; an invalid one raises
            ``ContractViolationError``); channel messages, record values and push payloads are
            decoded with its schemas. What the client reads ignores unknown members unless the
            contract was generated with ``--strict-readers`` (contract/README.md "Evolving a
            contract"). Generated facades bind theirs (:meth:`bind_contract`).
        ping_timeout: The server's ping interval in seconds (30.0); the watchdog reconnects when
            no ``ping`` arrived for ``(max_missed_pings + 1) × ping_timeout`` (§14). ``None``
            disables it.
        max_missed_pings: Pings that may go missing before the watchdog fires.
        should_reconnect: Reconnect after unexpected closes (§14, §16).
        reconnect_base_delay: First backoff ceiling in seconds (0.5); doubles per attempt, and
            each delay is drawn uniformly below the ceiling (full jitter).
        reconnect_max_delay: Cap of the backoff ceiling in seconds (30.0).
        reconnect_unavailable_delay: Cap of the backoff ceiling in seconds (1.0) after an
            upgrade answered HTTP 503: the server is up but cannot register connections yet
            (e.g. its backend is recovering), so it is asked again soon; a long outage then
            costs at most this much extra delay once the server serves again.
        max_reconnect_attempts: Give up after this many failed attempts in a row (``None``:
            never give up, the default).
        command_timeout: Default command timeout in seconds (30.0); ``None`` for none.
        max_message_size: Largest inbound frame in bytes (16 MiB).
        max_json_depth: Nesting limit of received frames (128; see
            :class:`~mesh_sdk.session.ClientSession`).
        open_timeout: Seconds allowed for the TCP/TLS/HTTP handshake and ``mesh/assign-id``
            (10.0).
        republish_presence_states: After a reconnect, publish again the presence states set
            through this client without ``expire_after`` (§14 step 3).
        queue_size: Items buffered per ``async for`` iterator of a subscription.
        additional_headers: Extra HTTP headers for the upgrade (e.g. an auth ticket).
        rng: Random source for the backoff jitter (``[0, 1)``), for tests.
        ws_logger: Logger for the websockets library.

    Raises:
        ValueError: ``url`` is not a ``ws://`` or ``wss://`` URL, or a duration is negative
            (``ping_timeout`` and ``open_timeout`` must be positive).
    """

    def __init__(
        self,
        url: str,
        *,
        contract: ContractIndex | None = None,
        ping_timeout: float | None = 30.0,
        max_missed_pings: int = 1,
        should_reconnect: bool = True,
        reconnect_base_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        reconnect_unavailable_delay: float = 1.0,
        max_reconnect_attempts: int | None = None,
        command_timeout: float | None = 30.0,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_json_depth: int = DEFAULT_SDK_MAX_JSON_DEPTH,
        open_timeout: float = 10.0,
        republish_presence_states: bool = True,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        additional_headers: Mapping[str, str] | None = None,
        rng: Callable[[], float] | None = None,
        ws_logger: LoggerLike | None = None,
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI as exc:
            raise ValueError(str(exc)) from None
        _check_seconds("command_timeout", command_timeout)
        _check_seconds("reconnect_unavailable_delay", reconnect_unavailable_delay)
        if not open_timeout > 0:
            raise ValueError(f"open_timeout must be positive seconds, not {open_timeout!r}")
        self.url = url
        self.contract = contract
        self._should_reconnect = should_reconnect
        self._max_reconnect_attempts = max_reconnect_attempts
        self._unavailable_delay = reconnect_unavailable_delay
        self._upgrade_status: int | None = None
        self._command_timeout = command_timeout
        self._max_message_size = max_message_size
        self._open_timeout = open_timeout
        self._republish_presence_states = republish_presence_states
        self._queue_size = queue_size
        self._additional_headers = dict(additional_headers or {})
        self._ws_logger = ws_logger
        self._session: ClientSession[_Handle] = ClientSession(
            ping_timeout=ping_timeout,
            max_missed_pings=max_missed_pings,
            backoff=Backoff(reconnect_base_delay, reconnect_max_delay, rng),
            max_message_size=max_message_size,
            max_json_depth=max_json_depth,
            assign_timeout=open_timeout,
        )
        self._dispatcher = CallbackDispatcher()
        self._emitter = EventEmitter(self._dispatcher)
        self._push_handlers: dict[str, list[Callback]] = {}
        self._ws: ClientConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._restore_task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closing = False
        self._close_event: asyncio.Event | None = None
        self._finalized = True
        self._local_abort = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.close_code: int | None = None
        """Close code of the last socket (``None`` before any close)."""
        self.close_reason: str = ""
        """Close reason of the last socket."""
        self.last_error: MeshError | None = None
        """The last connection error seen by the reconnect loop."""
        self._init_subscriptions()

    def __repr__(self) -> str:
        return f"<MeshClient {self.url} {self._session.state.value} {self.connection_id}>"

    # ----------------------------------------------------------------------------------------
    # Properties

    @property
    def connection_id(self) -> str | None:
        """The id assigned by the server (§5.2), ``None`` while not connected."""
        return self._session.connection_id

    @property
    def latency(self) -> float | None:
        """The last round trip in seconds the server reported with a ``latency`` push (§6)."""
        return self._session.latency

    @property
    def state(self) -> SessionState:
        """Where the client stands (idle, connecting, restoring, ready, disconnected, closed)."""
        return self._session.state

    @property
    def connected(self) -> bool:
        """Whether a connection is assigned (restoring or ready)."""
        return self._session.state in (SessionState.RESTORING, SessionState.READY)

    @property
    def closed(self) -> bool:
        """Whether the client is closed for good."""
        return self._session.state is SessionState.CLOSED

    # ----------------------------------------------------------------------------------------
    # Events

    def on(self, event: str, callback: Callback) -> Callable[[], None]:
        """Listen to a client event; ``callback`` may be sync or async.

        Events and their arguments: ``connect(connection_id)`` after every ``mesh/assign-id``;
        ``reconnect(connection_id)`` after one on a new socket; ``resubscribed()`` once
        subscriptions are restored and queued commands sent; ``disconnect(code, reason)`` when a
        socket closes; ``reconnect_failed(error)`` when reconnection is given up;
        ``close(code, reason)`` when the client is closed for good; ``latency(seconds)``;
        ``push(command, payload)`` for every application push; ``error(exception)`` for
        background failures (e.g. a re-subscription refused).

        Returns:
            A function removing the listener.

        Raises:
            ValueError: Unknown event name.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {sorted(EVENTS)}")
        return self._emitter.on(event, callback)

    def off(self, event: str, callback: Callback) -> None:
        """Remove a listener registered with :meth:`on`."""
        self._emitter.off(event, callback)

    def on_push(self, command: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(payload)`` for every server push named ``command`` (sync or async).

        Pushes come from the server's ``send``/``broadcast`` APIs. With a contract that declares
        the push, the payload is validated into its model first; an invalid one is dropped,
        logged and reported to ``"error"`` listeners as a
        :class:`~mesh_sdk.protocol.errors.ContractViolationError`.

        Returns:
            A function removing the handler.
        """
        handlers = self._push_handlers.setdefault(command, [])
        handlers.append(callback)

        def remove() -> None:
            if callback in handlers:
                handlers.remove(callback)

        return remove

    # ----------------------------------------------------------------------------------------
    # Lifecycle

    async def connect(self) -> None:
        """Open the connection; return once ``mesh/assign-id`` arrived (§5.2).

        Raises:
            MeshAuthenticationError: The upgrade was answered 401/403.
            MeshConnectionError: The server cannot be reached, or closed before assigning an id.
                No background reconnect is attempted after a failed first connect.
        """
        if self._supervisor is not None and not self._supervisor.done():
            if self._ready is not None:
                await asyncio.shield(self._ready)
            return
        loop = asyncio.get_running_loop()
        self._closing = False
        self._finalized = False
        self._close_event = asyncio.Event()
        self._ready = loop.create_future()
        try:
            async with asyncio.timeout(self._open_timeout):
                ws = await self._open()
                self._supervisor = loop.create_task(self._supervise(ws), name="mesh-sdk-client")
                await asyncio.shield(self._ready)
        except BaseException as exc:
            await self._abort_connect()
            if isinstance(exc, TimeoutError) and not isinstance(exc, MeshError):
                raise MeshConnectionError(f"cannot connect to {self.url}: timed out") from None
            raise

    async def _abort_connect(self) -> None:
        self._closing = True
        if self._close_event is not None:
            self._close_event.set()
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            await asyncio.gather(supervisor, return_exceptions=True)
        self._finalize()
        if self._ready is not None and self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # mark retrieved

    async def close(self) -> None:
        """Close the connection for good: no reconnect; pending commands fail with ``ECONNECTION``.

        Every subscription and room handle ends (iterators stop). The client may be connected
        again with :meth:`connect`, as a fresh connection without subscriptions. Safe to call
        several times and before :meth:`connect`.
        """
        self._closing = True
        if self._close_event is not None:
            self._close_event.set()
        ws = self._ws
        if ws is not None:
            await ws.close()
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            if ws is None:
                supervisor.cancel()  # sleeping before, or opening, a reconnect attempt
            done, _ = await asyncio.wait({supervisor}, timeout=1.0)
            if not done:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
        self._finalize()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._dispatcher.aclose(grace=1.0)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _open(self) -> ClientConnection:
        """Open one socket, translating websockets errors (STYLE: one boundary)."""
        try:
            return await ws_connect(
                self.url,
                # §2: liveness is application-level; never close for missing protocol pongs.
                ping_interval=None,
                ping_timeout=None,
                compression=None,
                max_size=self._max_message_size,
                open_timeout=self._open_timeout,
                close_timeout=1,
                proxy=None,
                additional_headers=self._additional_headers or None,
                logger=self._ws_logger,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            self._upgrade_status = status
            if not should_reconnect_after_status(status):
                raise MeshAuthenticationError(status=status) from exc
            raise MeshConnectionError(f"upgrade to {self.url} answered HTTP {status}") from exc
        except (OSError, InvalidHandshake, WebSocketException, TimeoutError, ValueError) as exc:
            raise MeshConnectionError(f"cannot connect to {self.url}: {exc}") from exc

    # ----------------------------------------------------------------------------------------
    # Supervisor: serve a socket, then reconnect with backoff (§14)

    async def _supervise(self, ws: ClientConnection) -> None:
        current: ClientConnection | None = ws
        try:
            while current is not None:
                reconnect = await self._serve(current)
                current = None
                if not reconnect:
                    break
                current = await self._reconnect()
        finally:
            if current is not None:
                current.transport.abort()
            self._finalize()

    async def _serve(self, ws: ClientConnection) -> bool:
        """Read ``ws`` until it closes; return whether to reconnect."""
        self._ws = ws
        self._local_abort = False
        self._session.connection_opened(self._now())
        self._reschedule_timer()
        try:
            async for message in ws:
                self._receive(message)
                await self._flush_outbox(ws)
        except ConnectionClosed:
            pass
        finally:
            self._connection_lost(ws)
        return self._decide_reconnect()

    def _connection_lost(self, ws: ClientConnection) -> None:
        self._ws = None
        if self._restore_task is not None:
            self._restore_task.cancel()
            self._restore_task = None
        self.close_code = ws.close_code
        self.close_reason = ws.close_reason or ""
        for failure in self._session.connection_lost(self._now()):
            self._handle_event(failure)
        self._reschedule_timer()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                MeshConnectionError(
                    f"connection closed before mesh/assign-id (code {self.close_code})"
                )
            )
        self._emitter.emit("disconnect", self.close_code, self.close_reason)

    def _decide_reconnect(self) -> bool:
        ready = self._ready
        if self._closing or ready is None or not ready.done() or ready.cancelled():
            return False
        if ready.exception() is not None:
            # The first connection never got an id: connect() raises, nothing runs in background.
            return False
        if self._local_abort:
            return True
        return self._should_reconnect and should_reconnect(self.close_code)

    async def _reconnect(self) -> ClientConnection | None:
        while not self._closing:
            attempts = self._session.reconnect_attempt
            if (
                self._max_reconnect_attempts is not None
                and attempts >= self._max_reconnect_attempts
            ):
                error = MeshConnectionError(f"gave up reconnecting after {attempts} attempts")
                self.last_error = error
                self._emitter.emit("reconnect_failed", error)
                return None
            unavailable = self._upgrade_status == UNAVAILABLE_STATUS
            delay = self._session.next_reconnect_delay(
                self._unavailable_delay if unavailable else None
            )
            self._upgrade_status = None
            if await self._wait_closing(delay):
                return None
            try:
                return await self._open()
            except MeshAuthenticationError as exc:
                # §14: 401/403 at upgrade ends reconnection with an authentication error.
                self.last_error = exc
                self._emitter.emit("reconnect_failed", exc)
                return None
            except MeshConnectionError as exc:
                self.last_error = exc
                logger.info("reconnect attempt %d failed: %s", attempts + 1, exc)
        return None

    async def _wait_closing(self, seconds: float) -> bool:
        event = self._close_event
        if event is None:
            return True
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return self._closing
        return True

    def _finalize(self) -> None:
        """Close for good, exactly once per :meth:`connect`: fail everything, end subscriptions."""
        if self._finalized:
            return
        self._finalized = True
        self._ws = None
        for failure in self._session.close():
            self._handle_event(failure)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if self._restore_task is not None:
            self._restore_task.cancel()
            self._restore_task = None
        self._end_subscriptions()
        self._emitter.emit("close", self.close_code, self.close_reason)

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
        _check_seconds("timeout", timeout)
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
