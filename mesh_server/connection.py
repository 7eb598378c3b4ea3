"""The asyncio adapter of one connection: drives a :class:`~mesh_server.session.ServerSession`.

It owns what the sans-I/O session cannot: the transport, the timer, request tasks, the outbound
bound and cleanup. There is one write path (``Connection._write``), used by responses, pushes,
broadcasts and liveness frames alike; pushes enter it through :meth:`Connection.send`.

* Reading: the transport calls :meth:`Connection._on_message` once per inbound message (no
  coroutine per frame). Requests run concurrently, one task each; built-in ``mesh/*`` commands of
  one connection run one at a time in arrival order (protocol.md §3.4) on a per-connection FIFO.
  Reading pauses while ``max_inflight_requests`` requests run (protocol.md §15).
* Timers: the session's next deadline, on the server's shared
  :class:`~mesh_server.timer_wheel.TimerWheel` (protocol.md §6; no timer handle per connection).
* Writing: synchronous; beyond ``max_outbound_bytes`` buffered or ``max_outbound_frames`` pending
  the connection is closed with 4001 and later frames are dropped (protocol.md §15, §16).
* Cleanup: exactly once, in the order of protocol.md §5.3, retried in the background while the
  backend is unreachable.
* Failure containment: every request task ends in exactly one answer and frees its in-flight
  slot, whatever fails (an unexpected exception is a server bug: ``ESERVER``, logged once with
  its traceback). An exception while handling an inbound frame (never expected) is logged and
  closes this connection with 1011 instead of escaping into the transport. Bad client input is
  counted in the server's :class:`~mesh_server.bad_input.BadInputLog`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from mesh_sdk.protocol.codec import Request
from mesh_server.session import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TOO_BIG,
    Close,
    Discarded,
    Pong,
    Reply,
    ServerSession,
)
from mesh_server.transport.base import TransportConnection, UpgradeRequest

if TYPE_CHECKING:
    from mesh_server.bad_input import BadInputLog
    from mesh_server.limits import Limits
    from mesh_server.metrics import Metrics
    from mesh_server.timer_wheel import TimerWheel

__all__ = ["Connection", "ConnectionHost", "Dispatcher"]

_log = logging.getLogger("mesh_server.connection")


class Dispatcher(Protocol):
    """What a connection needs of the command pipeline (:class:`mesh_server.pipeline.Pipeline`)."""

    @property
    def bad_input(self) -> BadInputLog:
        """The server's log of bad client input."""

    def is_builtin(self, command: str | None) -> bool:
        """Return whether ``command`` is a built-in ``mesh/*`` command."""

    async def run_command(self, connection: Connection, request: Request) -> bytes:
        """Answer an application command; returns the encoded response."""

    async def run_builtin(self, connection: Connection, request: Request) -> bytes:
        """Answer a built-in command; returns the encoded response."""

    def internal_error(
        self, connection: Connection, request: Request, exc: BaseException
    ) -> bytes | None:
        """Log an unexpected failure once; the generic ``ESERVER`` response, if one is due."""


class ConnectionHost(Protocol):
    """What a connection needs of the server core that owns it."""

    @property
    def pipeline(self) -> Dispatcher:
        """The command pipeline."""

    @property
    def limits(self) -> Limits:
        """Configured limits (protocol.md §15)."""

    @property
    def metrics(self) -> Metrics:
        """The server's metrics facade."""

    @property
    def timer_wheel(self) -> TimerWheel:
        """The shared liveness timer wheel (protocol.md §6)."""

    def notify_pong(self, connection: Connection) -> None:
        """Tell the features that react to pongs (presence refresh, protocol.md §10.3)."""

    async def cleanup_connection(self, connection: Connection) -> None:
        """Run the protocol.md §5.3 cleanup of a closing connection (once per connection)."""

    def track_cleanup(self, task: asyncio.Task[None]) -> None:
        """Keep a cleanup task until it finishes (shutdown waits for them)."""


class Connection:
    """One client connection on this instance (implements ``ConnectionLike``).

    Application code receives it as ``ctx.connection`` and in connection hooks.

    Attributes:
        id: The connection id (protocol.md §5.2).
        session: The sans-I/O session (liveness, limits).
        upgrade: The HTTP upgrade request (path, query, headers, cookies, peer).
    """

    __slots__ = (
        "_after_response",
        "_backlog",
        "_bad_input",
        "_before_start",
        "_builtin_task",
        "_builtins",
        "_closing",
        "_host",
        "_loop",
        "_max_bytes",
        "_max_frames",
        "_metrics",
        "_pipeline",
        "_started",
        "_t",
        "_tasks",
        "_timer_at",
        "_timer_tick",
        "_wheel",
        "cleanup_task",
        "close_code",
        "id",
        "session",
    )

    def __init__(
        self,
        host: ConnectionHost,
        transport: TransportConnection,
        connection_id: str,
        session: ServerSession,
    ) -> None:
        self.id = connection_id
        self._host = host
        self.session = session
        self._t = transport
        self._loop = asyncio.get_running_loop()
        self._pipeline = host.pipeline
        self._bad_input = host.pipeline.bad_input
        limits = host.limits
        self._max_bytes = limits.max_outbound_bytes
        self._max_frames = limits.max_outbound_frames
        self._metrics = host.metrics
        self._started = False
        self._closing = False
        self._before_start: list[bytes] = []
        self._wheel = host.timer_wheel
        self._timer_tick: int | None = None
        self._timer_at: float = 0.0
        # Queues and the task set are created when first needed: an idle connection has none
        # (an empty deque is ~0.4 KB; issue 12, idle memory).
        self._builtins: deque[Request] | None = None
        self._after_response: list[Callable[[], None]] = []
        self._backlog: deque[bytes] | None = None
        self._builtin_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] | None = None
        self.cleanup_task: asyncio.Task[None] | None = None
        self.close_code: int | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id}{' closed' if self._closing else ''}>"

    # ------------------------------------------------------------------ public

    @property
    def closed(self) -> bool:
        """Whether the connection is closing or closed."""
        return self._closing

    @property
    def upgrade(self) -> UpgradeRequest:
        """The HTTP upgrade request (protocol.md §5.1)."""
        return self._t.upgrade

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The peer's ``(host, port)``, when known."""
        return self._t.upgrade.peer

    @property
    def latency(self) -> float:
        """The last measured round trip in seconds (``0.0`` before the first, protocol.md §6).

        The session measures it in ms, the unit of the ``latency`` push it sends.
        """
        return self.session.rtt / 1000

    def send(self, frame: bytes) -> None:
        """Push one encoded frame (the path of every push: fan-out, ``send``, records).

        Frames sent before ``mesh/assign-id`` (e.g. from an ``on_connection`` hook) are held back
        until it is sent (protocol.md §5.2). Frames for a closing connection are dropped.
        """
        if self._closing:
            return
        if not self._started:
            self._before_start.append(frame)
            return
        if self._metrics.enabled:
            self._metrics.pushed()
        self._write(frame)

    def _write(self, frame: bytes) -> None:
        # The single choke point of all outbound traffic: responses, pushes, liveness frames.
        if self._closing:
            return
        transport = self._t
        paused = transport.write_frame(frame)
        metrics = self._metrics
        if metrics.enabled:
            metrics.written(len(frame))
        if paused and (
            transport.buffered_amount > self._max_bytes
            or transport.pending_frames > self._max_frames
        ):
            # §15: bounded outbound queue → close 4001 (slow consumer); memory stays bounded.
            metrics.slow_consumer()
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer")

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` (protocol.md §16) and start cleanup at once (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self.close_code = code
        self.session.close(code)
        self._t.start_close(code, reason)
        self._begin_cleanup()

    # ------------------------------------------------------------------ opening (§5.2)

    def start(self) -> None:
        """Send ``mesh/assign-id`` first, then process client frames and arm the timers."""
        if self._closing:
            return
        self._started = True
        self._write(self.session.start(self._now()))
        held, self._before_start = self._before_start, []
        for frame in held:
            self.send(frame)
        self._t.set_handlers(self._on_message, self._on_lost)
        self._arm_timer()

    # ------------------------------------------------------------------ inbound

    def _now(self) -> int:
        return int(self._loop.time() * 1000)

    def _on_message(self, data: bytes) -> None:
        if self._backlog or self.session.reading_paused:
            # Frames already read in the same chunk wait until a request finishes (§15).
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append(data)
            return
        self._handle(data)

    def _handle(self, data: bytes) -> None:
        try:
            event = self.session.receive(data, self._now())
            if event is None:
                return
            if type(event) is Request:
                self._dispatch(event)
            elif type(event) is Reply:
                self._bad_input.record(event.problem, self.id)
                if event.problem == "rate_limited":
                    self._metrics.rate_limited()
                self._write(event.frame)
            elif type(event) is Discarded:
                self._bad_input.record("malformed", self.id, event.reason[:200])
            elif type(event) is Close:
                if event.code == CLOSE_POLICY_VIOLATION or event.code == CLOSE_TOO_BIG:
                    kind = "policy_close" if event.code == CLOSE_POLICY_VIOLATION else "too_large"
                    self._bad_input.record(kind, self.id, event.reason)
                self.close(event.code, event.reason)
            elif type(event) is Pong:
                self._host.notify_pong(self)
        except Exception:
            # A bug, never bad input (the session classifies any frame): contain it to this
            # connection rather than let it escape into the transport.
            _log.exception("handling a frame failed on %s", self.id)
            self.close(CLOSE_INTERNAL_ERROR, "internal error")

    def _dispatch(self, request: Request) -> None:
        if self.session.request_started():
            self._t.pause_reading()  # §15: stop reading while too many requests run
        if self._pipeline.is_builtin(request.command):
            # §3.4: built-ins of one connection take effect in arrival order.
            if self._builtins is None:
                self._builtins = deque()
            self._builtins.append(request)
            if self._builtin_task is None:
                self._builtin_task = self._loop.create_task(self._run_builtins(self._builtins))
            return
        self._spawn(self._run_command(request))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_command(self, request: Request) -> None:
        await self._answer(self._pipeline.run_command, request)

    async def _run_builtins(self, queue: deque[Request]) -> None:
        try:
            while queue and not self._closing:
                await self._answer(self._pipeline.run_builtin, queue.popleft())
                self._run_after_response()
        finally:
            self._builtin_task = None
            self._after_response.clear()
            if queue and not self._closing:
                # Whatever ended this run, the built-ins still queued are answered: they would
                # otherwise wait for the next built-in, which may never come.
                self._builtin_task = self._loop.create_task(self._run_builtins(queue))

    async def _answer(
        self, run: Callable[[Connection, Request], Awaitable[bytes]], request: Request
    ) -> None:
        frame: bytes | None = None
        try:
            frame = await run(self, request)
        except Exception as exc:  # the pipeline answers every request; this is a bug
            frame = self._pipeline.internal_error(self, request, exc)
        except asyncio.CancelledError as exc:
            if not self._closing:
                # Nothing cancels the requests of an open connection: a CancelledError leaked by
                # a library, or a bug. Answered like any other failure.
                frame = self._pipeline.internal_error(self, request, exc)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        finally:
            # Whatever happened, the in-flight slot is freed (§15: reading resumes).
            self._finished(frame)

    def after_response(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` right after the response of the running built-in is sent.

        Subscriptions use it to release the pushes they held while being set up, so the
        response always precedes them (protocol.md §9.3, §10.4, §11.5). Outside a built-in the
        callback runs on the next event-loop turn.
        """
        if self._builtin_task is None or asyncio.current_task() is not self._builtin_task:
            self._loop.call_soon(callback)
            return
        self._after_response.append(callback)

    def _run_after_response(self) -> None:
        callbacks, self._after_response = self._after_response, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                _log.exception("after-response callback failed")

    def _finished(self, frame: bytes | None) -> None:
        # §5.3: responses of requests still running at close are discarded (send drops them).
        if frame is not None:
            self._write(frame)
        if self.session.request_finished() and not self._closing:
            backlog = self._backlog
            while backlog and not self.session.reading_paused and not self._closing:
                self._handle(backlog.popleft())
            if not self.session.reading_paused:
                self._t.resume_reading()

    def _on_lost(self) -> None:
        if not self._closing:
            self._closing = True
            self.close_code = self._t.close_code or 1006
            self.session.close(self.close_code)
            self._begin_cleanup()

    # ------------------------------------------------------------------ timers (§6)

    def _arm_timer(self) -> None:
        deadline = self.session.next_deadline
        if deadline is None or self._closing:
            return
        when = deadline / 1000.0
        if self._timer_tick is not None:
            if self._timer_at == when:
                return
            self._wheel.cancel(self, self._timer_tick)
        self._timer_at = when
        self._timer_tick = self._wheel.schedule(self, when)

    def on_deadline(self, when: float) -> None:
        """Run the liveness work due (called by the server's timer wheel, protocol.md §6).

        Args:
            when: The loop time (seconds) of the tick that fired, at or after the deadline.
        """
        self._timer_tick = None
        if self._closing:
            return
        # Never look earlier than the deadline, whatever the clock says.
        now = max(self._now(), int(self._timer_at * 1000))
        frames, close = self.session.on_timer(now)
        if close is not None:
            self.close(close.code, "ping timeout")
            return
        for frame in frames:
            self._write(frame)  # liveness frames are not pushes (metrics)
        self._arm_timer()

    # ------------------------------------------------------------------ cleanup (§5.3)

    def _begin_cleanup(self) -> None:
        # (1) stop timers and reading; unsent frames are dropped by send().
        if self._timer_tick is not None:
            self._wheel.cancel(self, self._timer_tick)
            self._timer_tick = None
        if self._builtins is not None:
            self._builtins.clear()
        self._backlog = None
        self._before_start.clear()
        self.cleanup_task = self._loop.create_task(self._host.cleanup_connection(self))
        self._host.track_cleanup(self.cleanup_task)

    async def wait_builtins(self, limit_s: float) -> None:
        """Wait (bounded) for the built-in command running now, so cleanup follows it."""
        task = self._builtin_task
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), limit_s)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        except Exception:  # pragma: no cover - the pipeline never raises
            _log.exception("built-in command failed during cleanup")
