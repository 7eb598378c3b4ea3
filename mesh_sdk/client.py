"""The asyncio Mesh client (protocol.md §14): connection, commands, liveness, reconnect.

:class:`MeshClient` is the asyncio adapter around the sans-I/O
:class:`~mesh_sdk.session.ClientSession`: it owns the socket, one reader task per socket, a
supervisor task that reconnects, and one timer (``loop.call_at``) for request expiry and the
ping watchdog. It is built in layers, one module each: this one holds the constructor, the
client's state and its event listeners; :class:`~mesh_sdk.lifecycle.ClientLifecycle` connects,
closes and reconnects; :class:`~mesh_sdk.commands.ClientCommands` sends commands and acts on the
session's events; :class:`~mesh_sdk.subscriptions.api.SubscriptionAPI` adds channels, rooms,
presence, records and metadata.

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

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from mesh_sdk.commands import check_seconds
from mesh_sdk.events import Callback, CallbackDispatcher, EventEmitter
from mesh_sdk.lifecycle import ClientLifecycle
from mesh_sdk.protocol.codec import DEFAULT_SDK_MAX_JSON_DEPTH
from mesh_sdk.reconnect import Backoff
from mesh_sdk.session import DEFAULT_MAX_MESSAGE_SIZE, ClientSession, SessionState
from mesh_sdk.subscriptions.base import DEFAULT_QUEUE_SIZE

if TYPE_CHECKING:
    from websockets.typing import LoggerLike

    from mesh_sdk.protocol.contract import ContractIndex
    from mesh_sdk.protocol.errors import MeshError

__all__ = ["EVENTS", "MeshClient"]

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


class MeshClient(ClientLifecycle):
    """A Mesh client with typed errors, automatic reconnect and re-subscription.

    Args:
        url: ``ws://`` or ``wss://`` URL of a Mesh server.
        contract: Optional :class:`~mesh_sdk.protocol.contract.ContractIndex`: command requests are
            validated before sending (an invalid one raises ``LocalValidationError``, never
            sent) and responses after receiving (returned as models; an invalid one raises
            ``ContractViolationError``); channel messages, record values and push payloads are
            decoded with its schemas (an invalid one is dropped and emitted to ``"error"``
            listeners as a ``ContractViolationError``). What the client reads ignores unknown
            members unless the contract was generated with ``--strict-readers``
            (contract/README.md "Evolving a contract"). Generated facades bind theirs
            (:meth:`bind_contract`).
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
        check_seconds("command_timeout", command_timeout)
        check_seconds("reconnect_unavailable_delay", reconnect_unavailable_delay)
        if not open_timeout > 0:
            raise ValueError(f"open_timeout must be positive seconds, not {open_timeout!r}")
        self.url = url
        self.contract = contract
        self._should_reconnect = should_reconnect
        self._max_reconnect_attempts = max_reconnect_attempts
        self._unavailable_delay = reconnect_unavailable_delay
        self._upgrade_status = None
        self._command_timeout = command_timeout
        self._max_message_size = max_message_size
        self._open_timeout = open_timeout
        self._republish_presence_states = republish_presence_states
        self._queue_size = queue_size
        self._additional_headers = dict(additional_headers or {})
        self._ws_logger = ws_logger
        self._session = ClientSession(
            ping_timeout=ping_timeout,
            max_missed_pings=max_missed_pings,
            backoff=Backoff(reconnect_base_delay, reconnect_max_delay, rng),
            max_message_size=max_message_size,
            max_json_depth=max_json_depth,
            assign_timeout=open_timeout,
        )
        self._dispatcher = CallbackDispatcher()
        self._emitter = EventEmitter(self._dispatcher)
        self._push_handlers = {}
        self._ws = None
        self._supervisor = None
        self._restore_task = None
        self._ready = None
        self._closing = False
        self._close_event = None
        self._finalized = True
        self._local_abort = False
        self._timer = None
        self._timer_at = None
        self._background = set()
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
