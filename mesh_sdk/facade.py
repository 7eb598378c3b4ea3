"""Runtime base classes of generated facades (codegen's ``facade.py``; contract/README.md).

Generated stubs are thin: a typed signature and one delegating call into the groups here, which
own every behaviour (STYLE.md "Generated code"). The client is typed structurally by
:class:`MeshClientLike`, so generated code type-checks against any object with ``command``,
``subscribe_channel`` and ``subscribe_record`` (``mesh_sdk.MeshClient``, or a fake in tests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar, cast

import pydantic
from pydantic import BaseModel

from mesh_sdk.protocol.contract import to_jsonable, validation_problems
from mesh_sdk.protocol.errors import ValidationError
from mesh_sdk.subscriptions.channels import ChannelSubscription
from mesh_sdk.subscriptions.records import RecordChange, RecordSubscription

__all__ = [
    "ChangeHandler",
    "ChannelGroup",
    "ChannelSubscriptionLike",
    "CommandGroup",
    "FacadeClient",
    "MeshClientLike",
    "MessageHandler",
    "RecordGroup",
    "RecordSubscriptionLike",
]

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


class MeshClientLike(Protocol):
    """The part of ``mesh_sdk.MeshClient`` that generated facades call."""

    async def command(self, name: str, payload: Any = None, *, timeout: Any = None) -> Any:  # noqa: ASYNC109
        """Send a command and return its result payload."""

    async def subscribe_channel(
        self, channel: str, on_message: Any = None, *, history_limit: Any = 0, model: Any = None
    ) -> Any:
        """Subscribe to a channel."""

    async def subscribe_record(
        self, record_id: str, *, mode: Any = "full", model: Any = None, on_change: Any = None
    ) -> Any:
        """Subscribe to a record."""


class _Group:
    __slots__ = ("_client",)

    def __init__(self, client: MeshClientLike) -> None:
        self._client = client


class CommandGroup(_Group):
    """Base of generated ``<Name>Commands``: sends typed requests, validates typed responses.

    A response that violates its schema raises
    :class:`mesh_sdk.protocol.errors.ValidationError` (``EVALIDATION``, with details).
    """

    __slots__ = ()

    async def _call(
        self,
        name: str,
        request: BaseModel,
        response_type: type[R],
        timeout: float | None,  # noqa: ASYNC109
    ) -> R:
        # ``timeout`` is in milliseconds, like every duration of the SDK.
        payload = to_jsonable(request)
        result = await self._client.command(name, payload, timeout=timeout)
        try:
            return response_type.model_validate(result, strict=True)
        except pydantic.ValidationError as exc:
            problems = validation_problems(exc, result)
            raise ValidationError(f'Invalid response for "{name}"', details=problems) from None


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
            channel, on_message, history_limit=history_limit, model=model
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
            record_id, mode=mode, model=model, on_change=on_change
        )
        return cast("RecordSubscriptionLike[T]", subscription)


class FacadeClient:
    """Base of generated ``<Name>Client``: holds the wrapped client."""

    def __init__(self, client: MeshClientLike) -> None:
        self.client = client
