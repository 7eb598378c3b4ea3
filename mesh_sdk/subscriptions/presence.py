"""Presence subscriptions (protocol.md §10): who is present in a room, and their states.

:class:`PresenceState` is the sans-I/O core. Events may repeat the subscribe snapshot (§10.4), so
it applies them idempotently and reports only effective changes: a ``join`` of a present
connection, a ``leave`` of an absent one or a ``state`` equal to the known one change nothing and
are not delivered to callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from mesh_sdk.events import CallbackDispatcher
from mesh_sdk.protocol.patch import json_equal
from mesh_sdk.subscriptions.base import (
    DEFAULT_QUEUE_SIZE,
    AsyncContextSubscription,
    Fanout,
    SubscriptionIterator,
)

__all__ = [
    "PresenceOwner",
    "PresenceSnapshot",
    "PresenceState",
    "PresenceSubscription",
    "PresenceUpdate",
]

UpdateType = Literal["join", "leave", "state"]


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """One effective ``mesh/presence-update`` (§8).

    Attributes:
        type: ``"join"``, ``"leave"`` or ``"state"``.
        connection_id: The connection concerned.
        room: The room.
        state: The new state for ``"state"`` updates (``None`` = cleared or expired).
        timestamp: Seconds since the epoch on the producing instance's clock (as
            :func:`time.time`; the wire's integer milliseconds / 1000), not for ordering;
            ``None`` if absent.
    """

    type: UpdateType
    connection_id: str
    room: str
    state: Any = None
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """Who is present in a room and their states (``mesh/get-presence-state``).

    Attributes:
        present: Connection ids present in the room.
        states: State per connection that has one.
    """

    present: frozenset[str]
    states: dict[str, Any]


class PresenceState:
    """The present set and states of one room, kept by applying events idempotently (sans-I/O)."""

    def __init__(
        self, present: Iterable[str] = (), states: Mapping[str, Any] | None = None
    ) -> None:
        self.present: set[str] = set()
        self.states: dict[str, Any] = {}
        self.reset(present, states or {})

    def reset(self, present: Iterable[Any], states: Any) -> None:
        """Replace everything with a snapshot (subscribe response)."""
        self.present = {p for p in present if isinstance(p, str)}
        self.states = (
            {k: v for k, v in states.items() if isinstance(k, str) and v is not None}
            if isinstance(states, dict)
            else {}
        )

    def replace(self, present: Iterable[Any], states: Any, room: str) -> list[PresenceUpdate]:
        """Take a new snapshot (re-subscription) and return the updates that lead to it.

        Leaves come first, then joins, then state changes, each sorted by connection id.
        """
        old_present, old_states = self.present, self.states
        self.reset(present, states)
        updates = [PresenceUpdate("leave", c, room) for c in sorted(old_present - self.present)]
        updates += [PresenceUpdate("join", c, room) for c in sorted(self.present - old_present)]
        for connection_id in sorted(old_states.keys() | self.states.keys()):
            old, new = old_states.get(connection_id), self.states.get(connection_id)
            if new is None and (old is None or connection_id not in self.present):
                continue  # never had a state, or its leave already says the state is gone
            if old is None or new is None or not json_equal(old, new):
                updates.append(PresenceUpdate("state", connection_id, room, new))
        return updates

    def apply(self, payload: Any) -> PresenceUpdate | None:
        """Apply one ``mesh/presence-update`` payload.

        Returns:
            The update if it changed anything, else ``None`` (repeat, or malformed payload).
        """
        if not isinstance(payload, dict):
            return None
        kind = payload.get("type")
        connection_id = payload.get("connectionId")
        if not isinstance(connection_id, str):
            return None
        room = payload.get("roomName")
        room = room if isinstance(room, str) else ""
        wire_timestamp = payload.get("timestamp")
        # §8: integer milliseconds since the epoch on the wire.
        timestamp = wire_timestamp / 1000 if type(wire_timestamp) is int else None
        if kind == "join":
            if connection_id in self.present:
                return None
            self.present.add(connection_id)
            return PresenceUpdate("join", connection_id, room, None, timestamp)
        if kind == "leave":
            # §10.4: leave implies the state is gone too.
            had_state = self.states.pop(connection_id, None) is not None
            if connection_id not in self.present and not had_state:
                return None
            self.present.discard(connection_id)
            return PresenceUpdate("leave", connection_id, room, None, timestamp)
        if kind == "state":
            state = payload.get("state")
            if state is None:
                if self.states.pop(connection_id, None) is None:
                    return None
            else:
                if connection_id in self.states and json_equal(self.states[connection_id], state):
                    return None
                self.states[connection_id] = state
            return PresenceUpdate("state", connection_id, room, state, timestamp)
        return None


class PresenceOwner(Protocol):
    """What a :class:`PresenceSubscription` asks of its client (the presence half of the client)."""

    async def unsubscribe_presence(self, room: str) -> bool:
        """Send ``mesh/unsubscribe-presence`` and drop the local subscription."""
        ...


class PresenceSubscription(AsyncContextSubscription):
    """A live presence subscription to one room.

    :attr:`present` and :attr:`states` are kept up to date from the subscribe snapshot and the
    events that follow. Callbacks registered with :meth:`on_update` (sync or async) and
    ``async for update in subscription`` receive each effective :class:`PresenceUpdate`. After a
    reconnect the client re-subscribes and replaces the snapshot.

    Attributes:
        room: The room.
    """

    def __init__(
        self,
        owner: PresenceOwner,
        room: str,
        dispatcher: CallbackDispatcher,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.room = room
        self._confirmed = False
        self._owner = owner
        self._state = PresenceState()
        self._fanout: Fanout[PresenceUpdate] = Fanout(dispatcher, queue_size)

    def __repr__(self) -> str:
        return f"<PresenceSubscription {self.room!r} present={sorted(self._state.present)}>"

    @property
    def present(self) -> frozenset[str]:
        """Connection ids present in the room."""
        return frozenset(self._state.present)

    @property
    def states(self) -> dict[str, Any]:
        """State per connection (a copy); connections without state are absent."""
        return dict(self._state.states)

    @property
    def ended(self) -> bool:
        """Whether the subscription is over."""
        return self._fanout.ended

    def on_update(self, callback: Callable[[PresenceUpdate], Any]) -> Callable[[], None]:
        """Call ``callback(update)`` for every effective update; returns a remover."""
        return self._fanout.add_callback(callback)

    def __aiter__(self) -> SubscriptionIterator[PresenceUpdate]:
        return self._fanout.iterator()

    def updates(self) -> SubscriptionIterator[PresenceUpdate]:
        """Return a new async iterator over updates."""
        return self._fanout.iterator()

    async def unsubscribe(self) -> bool:
        """Unsubscribe (``mesh/unsubscribe-presence``) and end iteration."""
        if self.ended:
            return False
        return await self._owner.unsubscribe_presence(self.room)

    # ----------------------------------------------------------------------------------------
    # Driven by the client

    def _reset(self, present: Any, states: Any, *, notify: bool = False) -> None:
        updates = self._state.replace(
            present if isinstance(present, list) else [], states, self.room
        )
        if notify:
            for update in updates:
                self._fanout.publish(update)

    def _apply(self, payload: Any) -> None:
        update = self._state.apply(payload)
        if update is not None:
            self._fanout.publish(update)

    def _end(self) -> None:
        self._fanout.end()
