"""Runtime base classes of generated facades (codegen's ``facade.py``; contract/README.md).

Generated stubs are thin: a typed signature and one delegating call into the groups here, which
own every behaviour (STYLE.md "Generated code"). The client is typed structurally by
:class:`MeshClientLike`, so generated code type-checks against any object with ``command``,
``subscribe_channel``, ``subscribe_record``, ``on``, ``connect``, ``close`` and ``connected``
(``mesh_sdk.MeshClient``, or a fake in tests).

Readers are tolerant: responses, channel messages and record values ignore unknown members
unless the contract was generated with ``--strict-readers`` (``ContractIndex.strict_readers``).
On every connect (first and after each reconnect) the facade asks the server for its contract
(``mesh/contract-info``) and compares fingerprints: a mismatch is a
:class:`~mesh_sdk.errors.ContractMismatchWarning`, or in strict mode a
:class:`~mesh_sdk.errors.ContractMismatchError` that closes the client.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, TypeVar, cast

import pydantic
from pydantic import BaseModel

from mesh_sdk.contract_check import (
    CONTRACT_INFO,
    ContractMismatch,
    compare_contract,
    parse_contract_info,
)
from mesh_sdk.errors import ContractMismatchError, ContractMismatchWarning
from mesh_sdk.protocol.contract import read_model, to_jsonable, validation_problems
from mesh_sdk.protocol.errors import (
    CommandNotFoundError,
    ContractViolationError,
    MeshConnectionError,
    MeshError,
    ValidationError,
)
from mesh_sdk.subscriptions.channels import ChannelSubscription
from mesh_sdk.subscriptions.records import RecordChange, RecordSubscription

if TYPE_CHECKING:
    from types import TracebackType

    from mesh_sdk.protocol.contract import ContractIndex

__all__ = [
    "ChangeHandler",
    "ChannelGroup",
    "ChannelSubscriptionLike",
    "CommandGroup",
    "ContractCheck",
    "FacadeClient",
    "MeshClientLike",
    "MessageHandler",
    "RecordGroup",
    "RecordSubscriptionLike",
]

logger = logging.getLogger("mesh_sdk")

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)

MessageHandler = Callable[[T], Awaitable[None] | None]
"""Callback for channel messages (called with the validated model)."""
ChangeHandler = Callable[[RecordChange[T]], Awaitable[None] | None]
"""Callback for record changes (called with a :class:`RecordChange` holding the typed value)."""

ChannelSubscriptionLike = ChannelSubscription
"""What a facade returns for a channel: the SDK's typed :class:`ChannelSubscription`."""

RecordSubscriptionLike = RecordSubscription
"""What a facade returns for a record: the SDK's typed :class:`RecordSubscription`."""

ContractCheck = Literal["warn", "strict", "off"]
"""What a facade does when the server's contract differs: warn, raise and close, or not ask."""


class MeshClientLike(Protocol):
    """The part of ``mesh_sdk.MeshClient`` that generated facades call."""

    def bind_contract(self, contract: ContractIndex) -> None:
        """Validate every request and received payload against ``contract``."""

    async def command(self, name: str, payload: Any = None, *, timeout: Any = None) -> Any:  # noqa: ASYNC109
        """Send a command and return its result payload."""

    async def subscribe_channel(
        self,
        channel: str,
        on_message: Any = None,
        *,
        history_limit: Any = 0,
        model: Any = None,
        strict_reader: Any = None,
    ) -> Any:
        """Subscribe to a channel."""

    async def subscribe_record(
        self,
        record_id: str,
        *,
        mode: Any = "full",
        model: Any = None,
        on_change: Any = None,
        strict_reader: Any = None,
    ) -> Any:
        """Subscribe to a record."""

    def on(self, event: str, callback: Callable[..., Any]) -> Any:
        """Listen to a client event (the facade listens to ``connect``)."""

    async def connect(self) -> None:
        """Connect (return once the server assigned an id)."""

    async def close(self) -> None:
        """Close for good."""

    @property
    def connected(self) -> bool:
        """Whether a connection is assigned."""


class _Group:
    __slots__ = ("_client", "_strict")

    def __init__(self, client: MeshClientLike, contract: ContractIndex) -> None:
        self._client = client
        self._strict = contract.strict_readers


class CommandGroup(_Group):
    """Base of generated ``<Name>Commands``: sends typed requests, reads typed responses.

    Every generated command method takes ``timeout``: seconds to wait for the response
    (``None``: the client's ``command_timeout``). The wrapped client is bound to the contract
    (:class:`FacadeClient`), so a request that violates its schema raises
    :class:`~mesh_sdk.protocol.errors.LocalValidationError` before it is sent, and a response
    that violates its schema raises :class:`~mesh_sdk.protocol.errors.ContractViolationError`;
    unknown response members are ignored unless the contract reads strictly.
    """

    __slots__ = ()

    async def _call(
        self,
        name: str,
        request: BaseModel,
        response_type: type[R],
        timeout: float | None,  # noqa: ASYNC109
    ) -> R:
        # ``timeout`` is in seconds, like every duration of the SDK.
        payload = to_jsonable(request)
        result = await self._client.command(name, payload, timeout=timeout)
        if isinstance(result, response_type):
            return result  # validated by the bound contract
        try:
            return read_model(response_type, result, strict=self._strict)
        except pydantic.ValidationError as exc:
            problems = validation_problems(exc, result)
            error = ValidationError(f'Invalid response for "{name}"', details=problems)
            raise ContractViolationError.broke(error) from None


class ChannelGroup(_Group):
    """Base of generated ``<Name>Channels``."""

    __slots__ = ()

    async def _subscribe(
        self,
        channel: str,
        model: type[T],
        on_message: MessageHandler[T] | None,
        history_limit: int,
    ) -> ChannelSubscriptionLike[T]:
        subscription = await self._client.subscribe_channel(
            channel,
            on_message,
            history_limit=history_limit,
            model=model,
            strict_reader=self._strict,
        )
        return cast("ChannelSubscriptionLike[T]", subscription)


class RecordGroup(_Group):
    """Base of generated ``<Name>Records``."""

    __slots__ = ()

    async def _subscribe(
        self,
        record_id: str,
        model: type[T],
        mode: Literal["full", "patch"],
        on_change: ChangeHandler[T] | None,
    ) -> RecordSubscriptionLike[T]:
        subscription = await self._client.subscribe_record(
            record_id, mode=mode, model=model, on_change=on_change, strict_reader=self._strict
        )
        return cast("RecordSubscriptionLike[T]", subscription)


class FacadeClient:
    """Base of generated ``<Name>Client``: binds the contract to the client, checks the server's.

    Binding (:meth:`mesh_sdk.MeshClient.bind_contract`) makes validation the default at the
    client end: ``ChatClient(MeshClient(url))`` validates exactly like
    ``MeshClient(url, contract=CONTRACT)`` (requests before sending, what it reads after).

    With ``contract_check`` other than ``"off"``, every ``connect`` event of the client (the
    first connection and each reconnect) starts a check in the background; a facade created
    over a client that is already connected checks at once. Use ``await facade.connect()`` (or
    ``async with facade:``) to connect and wait for the first check, so that strict mode raises
    there.

    Args:
        client: The wrapped client.
        contract: The generated contract index (``CONTRACT``).
        contract_check: ``"warn"`` (default): a mismatch warns
            (:class:`~mesh_sdk.errors.ContractMismatchWarning`, naming what differs);
            ``"strict"``: a mismatch, a server without contract or one that does not announce it
            closes the client and raises :class:`~mesh_sdk.errors.ContractMismatchError` from
            :meth:`connect` (kept in :attr:`contract_error`); ``"off"``: never ask.

    Attributes:
        client: The wrapped client.
        contract: The contract the facade was generated from.
        contract_mismatch: The outcome of the last completed check (``None``: it matched, or no
            check completed yet).
        contract_error: In strict mode, the error that closed the client.

    Raises:
        ValueError: Unknown ``contract_check``, or the client is already bound to a different
            contract.
    """

    def __init__(
        self, client: MeshClientLike, contract: ContractIndex, *, contract_check: ContractCheck
    ) -> None:
        if contract_check not in ("warn", "strict", "off"):
            raise ValueError(
                f"contract_check must be 'warn', 'strict' or 'off', not {contract_check!r}"
            )
        client.bind_contract(contract)
        self.client = client
        self.contract = contract
        self.contract_check: ContractCheck = contract_check
        self.contract_mismatch: ContractMismatch | None = None
        self.contract_error: ContractMismatchError | None = None
        self._check: asyncio.Task[None] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        if contract_check != "off":
            client.on("connect", self._on_connect)
            if client.connected:
                self._start_check()

    async def connect(self) -> None:
        """Connect the client and wait for the contract check of this connection.

        Raises:
            ContractMismatchError: Strict mode and the server's contract differs (the client is
                closed).
            MeshConnectionError: The client cannot connect.
        """
        await self.client.connect()
        check = self._check
        if check is not None:
            await asyncio.shield(check)
        if self.contract_error is not None:
            raise self.contract_error

    async def check_contract(self) -> ContractMismatch | None:
        """Ask the server for its contract now and compare; ``None`` when the fingerprints match.

        Neither warns nor raises for a mismatch (the connect checks do); records the outcome in
        :attr:`contract_mismatch`.

        Raises:
            ValidationError: The answer does not have the built-in schema's shape.
            MeshError: The command failed otherwise (e.g. ``ECONNECTION``, ``ETIMEOUT``).
        """
        try:
            result = await self.client.command(CONTRACT_INFO, {})
        except CommandNotFoundError:
            info = None  # a server older than mesh/contract-info
        else:
            try:
                info = parse_contract_info(result)
            except pydantic.ValidationError as exc:
                problems = validation_problems(exc, result)
                message = f'Invalid response for "{CONTRACT_INFO}"'
                raise ValidationError(message, details=problems) from None
        mismatch = compare_contract(self.contract, info)
        self.contract_mismatch = mismatch
        return mismatch

    async def close(self) -> None:
        """Close the client and wait for a running contract check to end."""
        await self.client.close()
        await asyncio.gather(*self._checks, return_exceptions=True)

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

    # ------------------------------------------------------------------ background checks

    def _on_connect(self, connection_id: str) -> None:
        # A task of its own: awaiting the answer inside the client's callback worker would hold
        # back every async callback of the application for a round trip.
        self._start_check()

    def _start_check(self) -> None:
        task = asyncio.get_running_loop().create_task(
            self._checked(), name="mesh-sdk-contract-check"
        )
        self._check = task
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _checked(self) -> None:
        try:
            mismatch = await self.check_contract()
        except MeshConnectionError:
            return  # the connection dropped meanwhile: the next connect checks again
        except MeshError as exc:
            logger.warning("could not check the server's contract: %s", exc)
            return
        if mismatch is None:
            self.contract_error = None  # e.g. reconnected to a server built from our contract
            return
        if self.contract_check == "strict":
            self.contract_error = ContractMismatchError(mismatch)
            logger.error("closing the client: %s", mismatch)
            await self.client.close()
            return
        warnings.warn(ContractMismatchWarning(str(mismatch)), stacklevel=1)
