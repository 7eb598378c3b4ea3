"""Application channels with history (PROTOCOL §9), plus the per-instance pub/sub plumbing.

Besides :class:`ChannelManager` this module holds two helpers the presence and record managers
share:

* :class:`BackendChannels` counts the local subscribers of each backend pub/sub channel and keeps
  the instance subscribed exactly while the count is positive: ``SUBSCRIBE`` (awaiting the
  confirmation) for the first local subscriber, ``UNSUBSCRIBE`` when the last one leaves
  (§9.4). A per-channel lock serializes the two so they never race.
* :class:`LocalSubscribers` is the local fan-out set of one kind of subscription. A subscription
  being set up is *pending*: live messages for it are held back and flushed right after its
  response has been queued, so the response always precedes them (§9.3, §10.4) and nothing
  published between the backend subscription and the response is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mesh_sdk.protocol.codec import dumps, encode_push
from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.errors import UnavailableError
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

if TYPE_CHECKING:
    from mesh_server.features import ConnectionLike, MessageRoute, ServerCore

__all__ = [
    "BackendChannels",
    "ChannelManager",
    "LocalSubscribers",
    "clamp_history",
    "to_json_text",
]

SUBSCRIPTION_MESSAGE = "mesh/subscription-message"


def clamp_history(limit: int | None, default: int, maximum: int) -> int:
    """Return a history request's limit: ``default`` if absent, clamped to ``maximum`` (§15)."""
    if limit is None:
        limit = default
    return max(0, min(limit, maximum))


def to_json_text(value: Any) -> str:
    """Return ``value`` as compact JSON text (pydantic models dumped by :func:`to_jsonable`)."""
    return dumps(to_jsonable(value)).decode("utf-8")


# ------------------------------------------------------------------------------ backend channels


@dataclass(slots=True)
class _PubSubState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0
    subscribed: bool = False


class BackendChannels:
    """Reference-counted backend pub/sub subscriptions of this instance (PROTOCOL §9.3, §9.4)."""

    def __init__(self, core: ServerCore) -> None:
        self._core = core
        self._states: dict[str, _PubSubState] = {}

    def is_subscribed(self, channel: str) -> bool:
        """Whether the instance currently holds a backend subscription to ``channel``."""
        state = self._states.get(channel)
        return state is not None and state.subscribed

    async def acquire(self, channel: str) -> None:
        """Add one local holder and return once the backend subscription is confirmed.

        Raises:
            UnavailableError: The backend could not subscribe; the hold is not taken.
        """
        state = self._states.get(channel)
        if state is None:
            state = self._states[channel] = _PubSubState()
        state.holders += 1
        try:
            async with state.lock:
                if not state.subscribed:
                    await self._core.backend.subscribe(channel)
                    state.subscribed = True
        except BaseException:
            state.holders -= 1
            self._forget_if_idle(channel, state)
            raise

    async def release(self, channel: str) -> None:
        """Drop one local holder; ``UNSUBSCRIBE`` when none is left (§9.4).

        A failing ``UNSUBSCRIBE`` is logged and retried by :meth:`resync`.
        """
        state = self._states.get(channel)
        if state is None:
            return
        state.holders -= 1
        if state.holders > 0:
            return
        async with state.lock:
            if state.holders <= 0 and state.subscribed:
                try:
                    await self._core.backend.unsubscribe(channel)
                except UnavailableError:
                    # Debug only: the outage itself is logged once by the backend.
                    self._core.log.debug(
                        "could not unsubscribe from %r; retried on recovery", channel
                    )
                    return
                state.subscribed = False
        self._forget_if_idle(channel, state)

    async def resync(self, channels: Iterable[str]) -> None:
        """Re-assert the backend subscription state of ``channels`` after a backend outage."""
        for channel in list(channels):
            state = self._states.get(channel)
            if state is None:
                continue
            async with state.lock:
                if state.holders > 0:
                    await self._core.backend.subscribe(channel)
                    state.subscribed = True
                elif state.subscribed:
                    await self._core.backend.unsubscribe(channel)
                    state.subscribed = False
            self._forget_if_idle(channel, state)

    def channels(self, prefix: str = "") -> list[str]:
        """Return the channels with local holders or a backend subscription, by prefix."""
        return [name for name in self._states if name.startswith(prefix)]

    def _forget_if_idle(self, channel: str, state: _PubSubState) -> None:
        idle = state.holders <= 0 and not state.subscribed and not state.lock.locked()
        if idle and self._states.get(channel) is state:
            del self._states[channel]


# ------------------------------------------------------------------------------ local fan-out


@dataclass(slots=True)
class _Hold:
    """Outstanding subscribe requests of one connection and the frames held back meanwhile."""

    count: int = 0
    frames: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class _Entry:
    active: set[str] = field(default_factory=set)
    pending: dict[str, _Hold] = field(default_factory=dict)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self.active or connection_id in self.pending

    def __bool__(self) -> bool:
        return bool(self.active) or bool(self.pending)


class LocalSubscribers:
    """Local subscribers per name (channel or room) with pending holds (§9.3, §10.4).

    Each subscription also remembers whether its backend hold (:meth:`BackendChannels.acquire`)
    was taken, so whoever ends it (unsubscribe, disconnect) releases exactly what was taken,
    even while the subscribe request is still awaiting the backend. :meth:`open`, :meth:`end`,
    :meth:`rollback` and :meth:`end_connection` do that together with the backend hold of
    ``prefix + name`` and the connection's subscription quota (§15).

    Args:
        core: The server core.
        pubsub: The instance's backend subscriptions.
        quota: The shared per-connection subscription count.
        prefix: Backend channel of a name = ``prefix + name``.
    """

    def __init__(
        self,
        core: ServerCore,
        pubsub: BackendChannels,
        quota: SubscriptionQuota,
        prefix: str = "",
    ) -> None:
        self._core = core
        self._pubsub = pubsub
        self._quota = quota
        self._prefix = prefix
        self._by_name: dict[str, _Entry] = {}
        self._by_connection: dict[str, dict[str, bool]] = {}

    # ------------------------------------------------------------------ with backend and quota

    async def open(self, name: str, connection_id: str) -> bool:
        """Subscribe as *pending* and take the backend hold of a new subscription.

        The caller reads what its response carries, then releases held frames with
        :meth:`unhold` after the response (or calls :meth:`rollback` if that read fails).

        Returns:
            Whether this repeats an existing subscription (no quota slot, no new hold).

        Raises:
            TooLargeError: The subscription quota is full (nothing changed).
            UnavailableError: The backend could not subscribe (rolled back).
        """
        repeat = self.is_subscribed(name, connection_id)
        if not repeat:
            self._quota.reserve(connection_id)
        self.hold(name, connection_id)
        if repeat:
            return True
        channel = self._prefix + name
        try:
            await self._pubsub.acquire(channel)
        except BaseException:
            await self.rollback(name, connection_id, repeat=False)
            raise
        if not self.mark_acquired(name, connection_id):
            # Unsubscribed or disconnected meanwhile: give the backend hold back.
            await self._pubsub.release(channel)
        return False

    async def rollback(self, name: str, connection_id: str, *, repeat: bool) -> None:
        """Undo a failed :meth:`open` (a repeat keeps the existing subscription)."""
        if repeat:
            self.unhold(name, connection_id)
        else:
            await self.end(name, connection_id)

    async def end(self, name: str, connection_id: str) -> bool:
        """End a subscription, its quota slot and its backend hold; ``False`` if there was none."""
        acquired = self.remove(name, connection_id)
        if acquired is None:
            return False
        self._quota.release(connection_id)
        if acquired:
            await self._pubsub.release(self._prefix + name)
        return True

    async def end_connection(self, connection_id: str) -> None:
        """End every subscription of a closing connection (§5.3 step 2)."""
        count, acquired = self.remove_connection(connection_id)
        self._quota.release(connection_id, count)
        await asyncio.gather(*(self._pubsub.release(self._prefix + name) for name in acquired))

    # ------------------------------------------------------------------ local state

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        """Return every name with at least one local subscriber."""
        return list(self._by_name)

    def is_subscribed(self, name: str, connection_id: str) -> bool:
        """Whether ``connection_id`` is subscribed (active or pending) to ``name``."""
        entry = self._by_name.get(name)
        return entry is not None and connection_id in entry

    def subscribers(self, name: str) -> set[str]:
        """Return the local subscribers of ``name`` (active and pending)."""
        entry = self._by_name.get(name)
        if entry is None:
            return set()
        return entry.active | entry.pending.keys()

    def names_of(self, connection_id: str) -> set[str]:
        """Return the names ``connection_id`` is subscribed to."""
        return set(self._by_connection.get(connection_id, ()))

    def hold(self, name: str, connection_id: str) -> bool:
        """Subscribe as *pending*: live frames are held until :meth:`unhold`.

        Returns:
            ``True`` if this is a new subscription, ``False`` for a repeat.
        """
        entry = self._by_name.get(name)
        if entry is None:
            entry = self._by_name[name] = _Entry()
        new = connection_id not in entry
        entry.active.discard(connection_id)
        hold = entry.pending.get(connection_id)
        if hold is None:
            hold = entry.pending[connection_id] = _Hold()
        hold.count += 1
        if new:
            self._by_connection.setdefault(connection_id, {})[name] = False
        return new

    def mark_acquired(self, name: str, connection_id: str) -> bool:
        """Note that the subscription's backend hold was taken.

        Returns:
            ``False`` if the subscription ended meanwhile (the caller must release the hold).
        """
        names = self._by_connection.get(connection_id)
        if names is None or name not in names:
            return False
        names[name] = True
        return True

    def unhold(self, name: str, connection_id: str) -> None:
        """End one pending hold; with none left, flush held frames and go live.

        Does nothing if the subscription ended in the meantime.
        """
        entry = self._by_name.get(name)
        hold = entry.pending.get(connection_id) if entry is not None else None
        if entry is None or hold is None:
            return
        hold.count -= 1
        if hold.count > 0:
            return
        del entry.pending[connection_id]
        entry.active.add(connection_id)
        if hold.frames:
            connection = self._core.local_connection(connection_id)
            if connection is not None and not connection.closed:
                for frame in hold.frames:
                    connection.send(frame)

    def remove(self, name: str, connection_id: str) -> bool | None:
        """End a subscription.

        Returns:
            ``None`` if ``connection_id`` was not subscribed, else whether its backend hold
            had been taken (and so must be released by the caller).
        """
        names = self._by_connection.get(connection_id)
        if names is None or name not in names:
            return None
        acquired = names.pop(name)
        if not names:
            del self._by_connection[connection_id]
        entry = self._by_name.get(name)
        if entry is not None:
            entry.active.discard(connection_id)
            entry.pending.pop(connection_id, None)
            if not entry:
                del self._by_name[name]
        return acquired

    def remove_connection(self, connection_id: str) -> tuple[int, list[str]]:
        """End every subscription of ``connection_id``.

        Returns:
            How many subscriptions ended, and the names whose backend hold must be released.
        """
        names = self._by_connection.get(connection_id, {})
        acquired = [name for name, taken in names.items() if taken]
        count = len(names)
        for name in list(names):
            self.remove(name, connection_id)
        return count, acquired

    def deliver(self, name: str, frame: bytes) -> None:
        """Send ``frame`` to the live subscribers of ``name``; hold it for pending ones."""
        entry = self._by_name.get(name)
        if entry is None:
            return
        if entry.active:
            self._core.deliver(tuple(entry.active), frame)
        for hold in entry.pending.values():
            hold.frames.append(frame)


# ------------------------------------------------------------------------------ channels


class ChannelManager:
    """Application channels: exposure, subscriptions, history and publishing (PROTOCOL §9)."""

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
