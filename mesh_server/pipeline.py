"""The command pipeline (protocol.md §3.4): lookup → validation → middleware → handler → response.

Rate limiting (step 1) and the nesting limit happen earlier, in the session
(:mod:`mesh_server.session`), because a rejected request never reaches the pipeline. Every request
ends in exactly one encoded response frame (§3.2 step 4); the pipeline never raises for a request
(only ``CancelledError`` escapes).

Logging: unknown commands and invalid payloads are the client's fault and go to the rate-limited
:class:`~mesh_server.bad_input.BadInputLog`; an unexpected exception of a handler or middleware,
or a result that cannot be encoded, is a server bug, logged once with its traceback, the request
id and the connection id. Each request's outcome (``ok`` or the error code, with its duration) is
one DEBUG record; every record carries its structured fields (:mod:`mesh_server.logs`).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Final

from mesh_sdk.protocol.codec import Request, dumps, encode_error_response, encode_response
from mesh_sdk.protocol.contract import CommandSpec, to_jsonable, to_wire
from mesh_sdk.protocol.errors import CommandNotFoundError, MeshError, ServerError
from mesh_sdk.protocol.generated import CONTRACT as BUILTIN_CONTRACT
from mesh_server.bad_input import BadInputLog
from mesh_server.context import Context
from mesh_server.features import Builtin
from mesh_server.logs import (
    FIELD_CODE,
    FIELD_COMMAND,
    FIELD_CONNECTION_ID,
    FIELD_DURATION_MS,
    FIELD_INSTANCE_ID,
    FIELD_REQUEST_ID,
)
from mesh_server.metrics import NO_METRICS, OTHER, Metrics
from mesh_server.middleware import Handler, Middleware, check_middleware, run_middleware
from mesh_server.session import RESERVED_NAMES, is_reserved

if TYPE_CHECKING:
    from mesh_sdk.protocol.contract import ContractIndex
    from mesh_server.api import ServerAPI
    from mesh_server.connection import Connection
    from mesh_server.limits import Limits

__all__ = [
    "RESERVED_NAMES",
    "Pipeline",
    "is_reserved",
]


@dataclass(frozen=True, slots=True)
class _AppCommand:
    handler: Handler
    middleware: tuple[Middleware, ...]
    spec: CommandSpec | None


@dataclass(frozen=True, slots=True)
class _BuiltinCommand:
    builtin: Builtin[Any]
    spec: CommandSpec  # of the built-in contract: every built-in payload is validated (§7)


def _command_text(request: Request) -> str:
    raw = request.raw_command
    if isinstance(raw, str):
        return raw
    if not request.has_command:
        return "undefined"
    return dumps(raw).decode()  # decoded JSON always re-encodes


class Pipeline:
    """Registered commands and middleware, and the code that runs one request.

    Args:
        server: The owning server (handed to every :class:`~mesh_server.context.Context`).
        limits: The server's limits (the bad-input log interval).
        contract: The application contract; when set, commands must be defined in it and
            their requests and responses are validated.
        debug: Send unexpected exceptions' text to clients (never do this in production).
        log: Logger for handler failures.
        metrics: Told each request's command, result code and duration.

    Attributes:
        bad_input: The server's log of bad client input (shared with its connections).
        failures: Requests answered ``ESERVER`` for an unexpected exception (server bugs).
    """

    def __init__(
        self,
        server: ServerAPI,
        *,
        limits: Limits,
        contract: ContractIndex | None,
        debug: bool,
        log: logging.Logger,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._server = server
        self._metrics = metrics
        self.contract = contract
        self.debug = debug
        self._log = log
        self._commands: dict[str, _AppCommand] = {}
        self._builtins: dict[str, _BuiltinCommand] = {}
        self._global: tuple[Middleware, ...] = ()
        self.bad_input = BadInputLog(log, limits.bad_input_log_interval)
        self.failures = 0

    # ------------------------------------------------------------------ registration

    def expose(self, name: str, handler: Handler, middleware: Sequence[Middleware] = ()) -> None:
        """Register an application command (see :meth:`MeshServer.expose_command`).

        Raises:
            ValueError: ``name`` is reserved, or a contract is set and does not define it.
            TypeError: ``handler`` or a middleware is not callable.
        """
        if not isinstance(name, str) or not name:
            raise ValueError("command name must be a non-empty string")
        if is_reserved(name):
            raise ValueError(f'"{name}" is reserved by the Mesh protocol (protocol.md §3.4)')
        if not callable(handler):
            raise TypeError(f"handler of {name!r} must be callable")
        spec: CommandSpec | None = None
        if self.contract is not None:
            spec = self.contract.command(name)
            if spec is None:
                raise ValueError(
                    f'command "{name}" is not defined by contract "{self.contract.name}"'
                )
        self._commands[name] = _AppCommand(handler, check_middleware(middleware), spec)

    def bind(self, contract: ContractIndex) -> None:
        """Validate every application command against ``contract`` from now on.

        Commands registered before are looked up in it too, so binding late loses nothing.

        Raises:
            ValueError: Already bound to a different contract, or a registered command is not
                defined by ``contract``.
        """
        current = self.contract
        if current is not None:
            if current is not contract and current.name != contract.name:
                raise ValueError(
                    f'server is bound to contract "{current.name}", not "{contract.name}"'
                )
            return
        undefined = sorted(name for name in self._commands if contract.command(name) is None)
        if undefined:
            raise ValueError(
                f'commands not defined by contract "{contract.name}": {", ".join(undefined)}'
            )
        self.contract = contract
        for name, entry in self._commands.items():
            self._commands[name] = _AppCommand(
                entry.handler, entry.middleware, contract.command(name)
            )

    def unimplemented(self) -> list[str]:
        """Return the contract's command names that have no handler (sorted; none without one)."""
        if self.contract is None:
            return []
        return sorted(name for name in self.contract.commands if name not in self._commands)

    def check_implemented(self) -> None:
        """Refuse a contract whose commands are not all handled (``MeshServer.start``).

        Raises:
            RuntimeError: Lists the commands without a handler.
        """
        missing = self.unimplemented()
        if missing and self.contract is not None:
            raise RuntimeError(
                f'contract "{self.contract.name}" commands without a handler: '
                f"{', '.join(missing)} (register them, or pass allow_unimplemented=True to "
                "MeshServer to start anyway; clients then get ENOTFOUND)"
            )

    def add_builtins(self, commands: Mapping[str, Builtin[Any]]) -> None:
        """Register built-in ``mesh/*`` commands (from the core and the feature managers).

        Raises:
            ValueError: A name is not a ``mesh/*`` command of the built-in contract.
            TypeError: A command's request model is not the one the built-in contract names.
        """
        for name, builtin in commands.items():
            spec = BUILTIN_CONTRACT.command(name) if name.startswith("mesh/") else None
            if spec is None:
                raise ValueError(f"{name!r} is not a built-in command of the Mesh protocol")
            if builtin.request is not spec.request_model:
                raise TypeError(
                    f"built-in {name!r} must take {spec.request_model.__name__}, "
                    f"not {builtin.request.__name__}"
                )
            self._builtins[name] = _BuiltinCommand(builtin, spec)

    def use(self, middleware: Sequence[Middleware]) -> None:
        """Append global middleware (run for every command, built-ins included)."""
        self._global = self._global + check_middleware(middleware)

    def is_builtin(self, command: str | None) -> bool:
        """Whether ``command`` is a registered built-in (those run in arrival order, §3.4)."""
        return command in self._builtins

    @property
    def command_names(self) -> list[str]:
        """Names of the registered application commands."""
        return list(self._commands)

    # ------------------------------------------------------------------ execution

    async def run_command(self, connection: Connection, request: Request) -> bytes:
        """Run an application command (or answer ``ENOTFOUND``) and return the response frame.

        The outcome is logged at DEBUG with its structured fields (:mod:`mesh_server.logs`) and
        counted in the server's metrics (:mod:`mesh_server.metrics`).
        """
        started = time.perf_counter()
        frame, code = await self._command(connection, request)
        self._outcome(connection, request, code, started, self._commands)
        return frame

    async def run_builtin(self, connection: Connection, request: Request) -> bytes:
        """Run a built-in command: validate (always), global middleware, handler (§3.4, §7).

        The outcome is logged and counted like :meth:`run_command`'s.
        """
        started = time.perf_counter()
        frame, code = await self._builtin(connection, request)
        self._outcome(connection, request, code, started, self._builtins)
        return frame

    def bind_metrics(self) -> None:
        """Prepare the metric series of every registered command (called at server start)."""
        self._metrics.bind_commands([*self._builtins, *self._commands])

    def _outcome(
        self,
        connection: Connection,
        request: Request,
        code: str,
        started: float,
        registered: Mapping[str, object],
    ) -> None:
        metrics = self._metrics
        log = self._log
        debug = log.isEnabledFor(logging.DEBUG)
        if not (metrics.enabled or debug):
            return
        duration = time.perf_counter() - started
        if metrics.enabled:
            # Labels stay bounded: only registered commands get their own.
            name = request.command
            metrics.command(
                name if name is not None and name in registered else OTHER, code, duration
            )
        if not debug:
            return
        duration_ms = duration * 1000
        command = request.command if request.command is not None else _command_text(request)
        log.debug(
            "command %s on %s: %s in %.3f ms",
            command[:100],
            connection.id,
            code,
            duration_ms,
            extra={
                FIELD_INSTANCE_ID: self._server.instance_id,
                FIELD_CONNECTION_ID: connection.id,
                FIELD_COMMAND: command[:100],
                FIELD_CODE: code,
                FIELD_DURATION_MS: duration_ms,
            },
        )

    async def _command(self, connection: Connection, request: Request) -> _Answer:
        command = request.command
        if command is None or (entry := self._commands.get(command)) is None:
            # §3.4 step 2: lookup before any middleware.
            return self._not_found(connection, request)
        raw = request.payload
        spec = entry.spec
        try:
            payload = spec.validate_request(raw) if spec is not None else raw  # step 3
        except MeshError as exc:
            return self._invalid(connection, request, exc)
        try:
            ctx = Context(command, payload, connection, self._server, request.id, raw)
            if self._global:
                await run_middleware(self._global, ctx)  # step 4
            if entry.middleware:
                await run_middleware(entry.middleware, ctx)  # step 5
            result: Any = entry.handler(ctx)  # step 6
            if type(result) is CoroutineType or inspect.isawaitable(result):
                result = await result
        except MeshError as exc:
            return _error(request, exc)
        except Exception as exc:
            return _error(request, self._unexpected(connection, request, exc))
        return self._encode_result(connection, request, result, spec)

    async def _builtin(self, connection: Connection, request: Request) -> _Answer:
        command = request.command
        if command is None or (entry := self._builtins.get(command)) is None:
            return self._not_found(connection, request)
        raw = request.payload
        try:
            model = entry.spec.validate_request(raw)
        except MeshError as exc:
            return self._invalid(connection, request, exc)
        try:
            if self._global:
                ctx = Context(command, model, connection, self._server, request.id, raw)
                await run_middleware(self._global, ctx)
            # A generated built-in model holds JSON already: dumped without re-walking it.
            payload = to_wire(await entry.builtin.handler(connection, model))
        except MeshError as exc:
            return _error(request, exc)
        except Exception as exc:
            return _error(request, self._unexpected(connection, request, exc))
        return self._encode_result(connection, request, payload, None)

    def internal_error(
        self, connection: Connection, request: Request, exc: BaseException
    ) -> bytes | None:
        """Answer ``ESERVER`` for a failure outside the handler (logged with its traceback).

        Returns:
            The error response, or ``None`` when not even that can be encoded (logged too).
        """
        error = self._unexpected(connection, request, exc)
        try:
            return encode_error_response(request, error)
        except Exception:
            self._log.exception("cannot answer a request on %s", connection.id)
            return None

    def _not_found(self, connection: Connection, request: Request) -> _Answer:
        text = _command_text(request)
        self.bad_input.record("unknown_command", connection.id, text[:100])
        return _error(request, CommandNotFoundError.for_command(text))

    def _invalid(self, connection: Connection, request: Request, exc: MeshError) -> _Answer:
        self.bad_input.record("invalid_payload", connection.id, f"{request.command}: {exc}"[:200])
        return _error(request, exc)

    def _encode_result(
        self, connection: Connection, request: Request, result: Any, spec: CommandSpec | None
    ) -> _Answer:
        try:
            if spec is not None:
                payload = spec.dump_response(result)
            elif type(result) in _PLAIN:
                payload = result
            else:
                payload = to_jsonable(result)
            return encode_response(request, payload), _OK
        except Exception as exc:
            # A result that violates the response schema or is not JSON: a server bug → ESERVER.
            error = self._unexpected(connection, request, exc, "invalid result of command %r")
            return _error(request, error)

    def _unexpected(
        self,
        connection: Connection,
        request: Request,
        exc: BaseException,
        what: str = "command %r failed",
    ) -> MeshError:
        # §4: any other exception → "Internal server error"/"Error"; traceback logged once; its
        # text only with debug.
        self.failures += 1
        command = request.command if request.command is not None else _command_text(request)
        request_id = _id_text(request)
        self._log.error(
            what + " (request id %s on %s)",
            command,
            request_id,
            connection.id,
            exc_info=exc,
            extra={
                FIELD_INSTANCE_ID: self._server.instance_id,
                FIELD_CONNECTION_ID: connection.id,
                FIELD_COMMAND: command[:100],
                FIELD_REQUEST_ID: request_id,
                FIELD_CODE: "ESERVER",
            },
        )
        if self.debug:
            return ServerError(f"{type(exc).__name__}: {exc}")
        return ServerError("Internal server error")


def _id_text(request: Request) -> str:
    if request.raw_id is not None:
        return request.raw_id[:100]
    try:
        return dumps(request.id).decode()[:100]
    except TypeError:  # not from the wire (a decoded id always encodes)
        return repr(request.id)[:100]


_PLAIN: Final = frozenset({dict, list, str, int, float, bool, type(None)})

_OK: Final = "ok"
_Answer = tuple[bytes, str]
"""A response frame and the request's outcome (``"ok"`` or the error code) for the log and
metrics."""


def _error(request: Request, error: MeshError) -> _Answer:
    return encode_error_response(request, error), error.code
