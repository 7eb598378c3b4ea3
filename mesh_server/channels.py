"""Application channels with history (protocol.md §9).

Subscriptions use the per-instance pub/sub plumbing of :mod:`mesh_server.subscribers`
(reference-counted backend subscriptions, local fan-out with pending holds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mesh_sdk.protocol.codec import dumps, encode_push
from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.generated.models import (
    GetChannelHistoryDenied,
    GetChannelHistoryRequest,
    GetChannelHistorySuccess,
    SubscribeChannelDenied,
    SubscribeChannelRequest,
    SubscribeChannelSuccess,
    UnsubscribeChannelRequest,
    UnsubscribeChannelResponse,
)
from mesh_server.exposure import (
    Exposure,
    Guard,
    Pattern,
    SubscriptionQuota,
    check_name,
    is_internal_name,
)
from mesh_server.features import Builtin
from mesh_server.subscribers import BackendChannels, LocalSubscribers

if TYPE_CHECKING:
    from mesh_server.features import ConnectionLike, MessageRoute, ServerCore

__all__ = ["ChannelManager", "clamp_history", "to_json_text"]

SUBSCRIPTION_MESSAGE = "mesh/subscription-message"


def clamp_history(limit: int | None, default: int, maximum: int) -> int:
    """Return a history request's limit: ``default`` if absent, clamped to ``maximum`` (§15)."""
    if limit is None:
        limit = default
    return max(0, min(limit, maximum))


def to_json_text(value: Any) -> str:
    """Return ``value`` as compact JSON text (pydantic models dumped by :func:`to_jsonable`)."""
    return dumps(to_jsonable(value)).decode("utf-8")


# ------------------------------------------------------------------------------ channels


class ChannelManager:
    """Application channels: exposure, subscriptions, history and publishing (protocol.md §9)."""

    def __init__(self, core: ServerCore, pubsub: BackendChannels, quota: SubscriptionQuota) -> None:
        self._core = core
        self._pubsub = pubsub
        self._exposure = Exposure()
        self._subscribers = LocalSubscribers(core, pubsub, quota)

    # ------------------------------------------------------------------ server API

    def expose(self, pattern: Pattern, guard: Guard | None = None) -> None:
        """Allow clients to subscribe to channels matching ``pattern`` (§9.1, §11.1)."""
        self._exposure.add(pattern, guard)

    async def publish(self, channel: str, message: Any, history: int = 0) -> None:
        """Publish to an application channel, keeping the ``history`` most recent (§9.5).

        Args:
            channel: The channel name, used verbatim (§9.2).
            message: A string, sent as is; anything else is sent as compact JSON text, validated
                first when the contract has a schema for the channel.
            history: Number of messages the channel's history keeps (0: none kept).

        Raises:
            ValueError: ``channel`` is an internal name or ``history`` is negative.
            ValidationError: The contract's channel schema rejects ``message``.
            UnavailableError: The backend is unreachable.
        """
        if is_internal_name(channel, self._core.namespace):
            raise ValueError(f"{channel!r} is an internal channel name")
        if history < 0:
            raise ValueError("history must be >= 0")
        if not isinstance(message, str):
            spec = self._core.contract.channel_for(channel) if self._core.contract else None
            message = to_jsonable(message)
            if spec is not None:
                spec.validate_message(message)
            message = to_json_text(message)
        await self._core.backend.publish_channel(channel, message, history)

    def subscribers(self, channel: str) -> set[str]:
        """Return the local connection ids subscribed to ``channel``."""
        return self._subscribers.subscribers(channel)

    # ------------------------------------------------------------------ built-ins

    def builtin_commands(self) -> Mapping[str, Builtin[Any]]:
        """Return the channel built-ins (§7)."""
        return {
            "mesh/subscribe-channel": Builtin(SubscribeChannelRequest, self._subscribe),
            "mesh/unsubscribe-channel": Builtin(UnsubscribeChannelRequest, self._unsubscribe),
            "mesh/get-channel-history": Builtin(GetChannelHistoryRequest, self._get_history),
        }

    async def _allowed(self, connection: ConnectionLike, channel: str) -> bool:
        # §9.2: internal names are denied whatever the patterns say.
        if is_internal_name(channel, self._core.namespace):
            return False
        return await self._exposure.allows(connection, channel)

    async def _subscribe(
        self, connection: ConnectionLike, request: SubscribeChannelRequest
    ) -> SubscribeChannelSuccess | SubscribeChannelDenied:
        channel = request.channel
        limits = self._core.limits
        check_name("mesh/subscribe-channel", "channel", channel, limits.max_name_length)
        if not await self._allowed(connection, channel):
            return SubscribeChannelDenied.model_construct(success=False, history=[])
        limit = clamp_history(request.historyLimit, 0, limits.max_history)
        cid = connection.id
        # §9.3: local set first, then SUBSCRIBE + confirmation, then history; messages that
        # arrive meanwhile are held and follow the response.
        repeat = await self._subscribers.open(channel, cid)
        try:
            history = await self._core.backend.channel_history(channel, limit) if limit else []
        except BaseException:
            await self._subscribers.rollback(channel, cid, repeat=repeat)
            raise
        connection.after_response(lambda: self._subscribers.unhold(channel, cid))
        return SubscribeChannelSuccess.model_construct(success=True, history=history)

    async def _unsubscribe(
        self, connection: ConnectionLike, request: UnsubscribeChannelRequest
    ) -> UnsubscribeChannelResponse:
        channel = request.channel
        check_name(
            "mesh/unsubscribe-channel", "channel", channel, self._core.limits.max_name_length
        )
        # §9.4: true iff *this* connection was subscribed.
        ended = await self._subscribers.end(channel, connection.id)
        return UnsubscribeChannelResponse.model_construct(ended)

    async def _get_history(
        self, connection: ConnectionLike, request: GetChannelHistoryRequest
    ) -> GetChannelHistorySuccess | GetChannelHistoryDenied:
        channel = request.channel
        limits = self._core.limits
        check_name("mesh/get-channel-history", "channel", channel, limits.max_name_length)
        if not await self._allowed(connection, channel):
            return GetChannelHistoryDenied.model_construct(success=False, history=[])
        limit = clamp_history(request.limit, 50, limits.max_history)
        history = await self._core.backend.channel_history(channel, limit) if limit else []
        return GetChannelHistorySuccess.model_construct(success=True, history=history)

    # ------------------------------------------------------------------ Feature hooks

    def message_routes(self) -> Mapping[str, MessageRoute]:
        """Application channels arrive on the empty prefix (anything not internal)."""
        return {"": self._on_message}

    def _on_message(self, channel: str, data: bytes) -> None:
        if channel not in self._subscribers:
            return
        # §8: other publishers' bytes are decoded as UTF-8, invalid sequences → U+FFFD.
        message = data.decode("utf-8", errors="replace")
        frame = encode_push(SUBSCRIPTION_MESSAGE, {"channel": channel, "message": message})
        self._subscribers.deliver(channel, frame)

    async def on_disconnect(self, connection: ConnectionLike) -> None:
        """Drop the connection's channel subscriptions; release unneeded ones (§5.3, §9.4)."""
        await self._subscribers.end_connection(connection.id)

    async def on_backend_recovered(self) -> None:
        """Re-assert the backend subscriptions of application channels."""
        namespace = self._core.namespace
        await self._pubsub.resync(
            name for name in self._pubsub.channels() if not is_internal_name(name, namespace)
        )

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""
