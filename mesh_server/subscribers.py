"""Per-instance pub/sub plumbing shared by the channel, presence and record managers.

* :class:`BackendChannels` counts the local subscribers of each backend pub/sub channel and keeps
  the instance subscribed exactly while the count is positive: ``SUBSCRIBE`` (awaiting the
  confirmation) for the first local subscriber, ``UNSUBSCRIBE`` when the last one leaves
  (protocol.md §9.4). A per-channel lock serializes the two so they never race.
* :class:`LocalSubscribers` is the local fan-out set of one kind of subscription. A subscription
  being set up is *pending*: live messages for it are held back and flushed right after its
  response has been queued, so the response always precedes them (§9.3, §10.4) and nothing
  published between the backend subscription and the response is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mesh_sdk.protocol.errors import UnavailableError

if TYPE_CHECKING:
    from mesh_server.exposure import SubscriptionQuota
    from mesh_server.features import ServerCore

__all__ = ["BackendChannels", "LocalSubscribers"]


# ------------------------------------------------------------------------------ backend channels


@dataclass(slots=True)
class _PubSubState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0
    subscribed: bool = False


class BackendChannels:
    """Reference-counted backend pub/sub subscriptions of this instance (protocol.md §9.3, §9.4)."""

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
