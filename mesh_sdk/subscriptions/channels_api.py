"""The channel half of :class:`~mesh_sdk.client.MeshClient` (protocol.md §9).

Subscribing, unsubscribing and reading history; the :class:`ChannelSubscription` objects it
returns are in :mod:`mesh_sdk.subscriptions.channels`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from mesh_sdk.errors import SubscriptionDenied
from mesh_sdk.protocol.contract import read_model_json
from mesh_sdk.protocol.generated.models import (
    GetChannelHistoryRequest,
    SubscribeChannelRequest,
    UnsubscribeChannelRequest,
)
from mesh_sdk.subscriptions.channels import ChannelSubscription, MessageDecoder
from mesh_sdk.subscriptions.core import SubscriptionCore, identity, succeeded

__all__ = ["ChannelsAPI"]

M = TypeVar("M", bound=BaseModel)


class ChannelsAPI(SubscriptionCore):
    """Channel subscriptions and history; mixed into ``MeshClient``."""

    _channels: dict[str, ChannelSubscription[Any]]

    @overload
    async def subscribe_channel(
        self,
        channel: str,
        on_message: Callable[[M], Any] | None = None,
        *,
        history_limit: int = 0,
        model: type[M],
        strict_reader: bool | None = None,
    ) -> ChannelSubscription[M]: ...

    @overload
    async def subscribe_channel(
        self,
        channel: str,
        on_message: Callable[[Any], Any] | None = None,
        *,
        history_limit: int = 0,
        model: None = None,
        strict_reader: bool | None = None,
    ) -> ChannelSubscription[Any]: ...

    async def subscribe_channel(
        self,
        channel: str,
        on_message: Callable[[Any], Any] | None = None,
        *,
        history_limit: int = 0,
        model: type[BaseModel] | None = None,
        strict_reader: bool | None = None,
    ) -> ChannelSubscription[Any]:
        """Subscribe to a channel (``mesh/subscribe-channel``, §9.3).

        Subscribing again to the same channel replaces the local subscription (the old object
        ends) and returns history again.

        Args:
            channel: The channel name.
            on_message: Optional callback (sync or async) for live messages.
            history_limit: How many past messages to return in :attr:`~ChannelSubscription.history`
                (newest first).
            model: A pydantic model to decode messages with (``model_validate_json``);
                otherwise the contract's channel schema, otherwise raw strings.
            strict_reader: Reject messages with unknown members; by default (``None``) only
                with a ``--strict-readers`` contract, otherwise unknown members are ignored
                (tolerant reader, contract/README.md "Evolving a contract").

        Raises:
            SubscriptionDenied: The server answered ``success: false``.
            MeshError: Any error response (e.g. ``TooLargeError``).
        """
        sub: ChannelSubscription[Any] = ChannelSubscription(
            self,
            channel,
            self._channel_decoder(channel, model, strict_reader),
            self._dispatcher,
            queue_size=self._queue_size,
        )
        if on_message is not None:
            sub.on_message(on_message)
        self._register(self._channels, channel, sub)
        request = SubscribeChannelRequest.model_construct(channel=channel)
        if history_limit:
            request.historyLimit = history_limit
        try:
            await self._builtin(request, on_result=partial(self._channel_answer, sub, True))
        except BaseException:
            self._unregister(self._channels, channel, sub)
            raise
        return sub

    def _channel_decoder(
        self, channel: str, model: type[BaseModel] | None, strict: bool | None
    ) -> MessageDecoder[Any]:
        # The contract's model (a facade passes it) decodes as the contract does, so what breaks
        # it is reported as a ContractViolationError; a model of the caller's own is not the
        # contract: its failures are only logged and counted.
        strict = self._strict_readers if strict is None else strict
        spec = self.contract.channel_for(channel) if self.contract is not None else None
        if spec is not None and model in (None, spec.message_model):
            return partial(spec.decode_message, strict=strict)
        if model is not None:
            return partial(read_model_json, model, strict=strict)
        return identity

    def _channel_answer(self, sub: ChannelSubscription[Any], history: bool, payload: Any) -> Any:
        if not succeeded(payload):
            raise SubscriptionDenied(target=sub.channel)
        if history:
            sub._set_history(payload.get("history"))
        sub._confirmed = True
        return payload

    async def unsubscribe_channel(self, channel: str) -> bool:
        """Unsubscribe from a channel; returns whether this connection was subscribed (§9.4)."""
        sub = self._channels.pop(channel, None)
        if sub is not None:
            sub._end()
        request = UnsubscribeChannelRequest.model_construct(channel=channel)
        return await self._builtin(request) is True

    async def get_channel_history(self, channel: str, limit: int = 50) -> list[str]:
        """Return up to ``limit`` past messages of ``channel``, newest first (§9.5).

        Raises:
            SubscriptionDenied: The channel is not readable by this connection.
        """
        request = GetChannelHistoryRequest.model_construct(channel=channel, limit=limit)
        result = await self._builtin(request)
        if not succeeded(result):
            raise SubscriptionDenied(target=channel)
        history = result.get("history")
        return [m for m in history if isinstance(m, str)] if isinstance(history, list) else []
