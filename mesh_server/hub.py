"""The per-instance index of local connections and rooms, and dispatch of backend messages.

Broadcasts cost O(instances) backend messages (protocol.md §13.2): one publish on the broadcast
channel, which every instance resolves here against its *local* connections or its *local room
index* (room → local connection ids). The feature managers keep that index current through
:meth:`Hub.index_join` / :meth:`Hub.index_leave` / :meth:`Hub.index_clear`; remote membership
changes of local connections arrive as inbox control messages.

Every encoded frame is written as the same ``bytes`` object to every recipient (encode once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mesh_server.backends.messages import BROADCAST, decode_envelope, inbox_channel
from mesh_server.features import MessageRoute

if TYPE_CHECKING:
    from mesh_server.connection import Connection

__all__ = ["Hub"]

_EMPTY: frozenset[str] = frozenset()


class Hub:
    """Local connections, the local room index and the backend message router.

    Args:
        namespace: Internal channel prefix (protocol.md §9.2).
        instance_id: This instance's id (its inbox channel).
        log: Logger for undeliverable or malformed internal messages.
    """

    def __init__(self, namespace: str, instance_id: str, log: logging.Logger) -> None:
        self.namespace = namespace
        self.connections: dict[str, Connection] = {}
        self.rooms: dict[str, set[str]] = {}
        self._rooms_of: dict[str, set[str]] = {}
        self._routes: list[tuple[str, MessageRoute]] = []
        self._inbox = inbox_channel(namespace, instance_id)
        self._broadcast = namespace + BROADCAST
        self._log = log
        self._on_room_control: Callable[[str, str, str], None] = self._index_control
        self._on_room_clear: Callable[[str], None] = self.index_clear

    def set_room_handlers(
        self, on_control: Callable[[str, str, str], None], on_clear: Callable[[str], None]
    ) -> None:
        """Route remote membership changes to the room manager instead of the bare index.

        Args:
            on_control: Called with ``(op, room, connection_id)`` for inbox ``room`` controls
                (``op`` is ``"join"`` or ``"leave"``); it must update the index itself.
            on_clear: Called with the room of a ``clear`` broadcast; it must update the index.
        """
        self._on_room_control = on_control
        self._on_room_clear = on_clear

    def _index_control(self, op: str, room: str, connection_id: str) -> None:
        if op == "join":
            self.index_join(room, connection_id)
        elif op == "leave":
            self.index_leave(room, connection_id)

    # ------------------------------------------------------------------ connections

    def add(self, connection: Connection) -> None:
        """Index an open local connection."""
        self.connections[connection.id] = connection

    def remove(self, connection_id: str) -> None:
        """Forget a local connection and its local room memberships."""
        self.connections.pop(connection_id, None)
        for room in self._rooms_of.pop(connection_id, ()):
            members = self.rooms.get(room)
            if members is not None:
                members.discard(connection_id)
                if not members:
                    del self.rooms[room]

    def deliver(self, connection_ids: Iterable[str], frame: bytes) -> None:
        """Write ``frame`` to each open local connection among ``connection_ids``."""
        connections = self.connections
        for connection_id in connection_ids:
            connection = connections.get(connection_id)
            if connection is not None:
                connection.send(frame)

    def deliver_all(self, frame: bytes, exclude: Iterable[str] = ()) -> None:
        """Write ``frame`` to every local connection except ``exclude``."""
        excluded = set(exclude) if exclude else _EMPTY
        for connection_id, connection in list(self.connections.items()):
            if connection_id not in excluded:
                connection.send(frame)

    # ------------------------------------------------------------------ local room index (§13.2)

    def index_join(self, room: str, connection_id: str) -> None:
        """Record that a local connection is a member of ``room``."""
        if connection_id not in self.connections:
            return
        self.rooms.setdefault(room, set()).add(connection_id)
        self._rooms_of.setdefault(connection_id, set()).add(room)

    def index_leave(self, room: str, connection_id: str) -> None:
        """Drop a local connection's membership of ``room``."""
        members = self.rooms.get(room)
        if members is not None:
            members.discard(connection_id)
            if not members:
                del self.rooms[room]
        rooms = self._rooms_of.get(connection_id)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[connection_id]

    def index_clear(self, room: str) -> None:
        """Drop ``room`` from the local index (it was cleared)."""
        for connection_id in self.rooms.pop(room, ()):
            rooms = self._rooms_of.get(connection_id)
            if rooms is not None:
                rooms.discard(room)
                if not rooms:
                    del self._rooms_of[connection_id]

    def local_room_members(self, room: str) -> set[str]:
        """Return (a copy of) the local members of ``room``."""
        return set(self.rooms.get(room, ()))

    def local_rooms_of(self, connection_id: str) -> set[str]:
        """Return (a copy of) the rooms a local connection is indexed in."""
        return set(self._rooms_of.get(connection_id, ()))

    # ------------------------------------------------------------------ backend messages

    def add_routes(self, routes: Mapping[str, MessageRoute]) -> None:
        """Add channel-prefix routes of a feature manager (longest prefix wins)."""
        merged = dict(self._routes)
        for prefix, route in routes.items():
            if prefix in merged:
                raise ValueError(f"message route prefix {prefix!r} registered twice")
            merged[prefix] = route
        self._routes = sorted(merged.items(), key=lambda item: len(item[0]), reverse=True)

    def on_message(self, channel: str, data: bytes) -> None:
        """Dispatch one backend pub/sub message (the backend's ``MessageHandler``)."""
        try:
            if channel == self._broadcast:
                self._on_broadcast(data)
            elif channel == self._inbox:
                self._on_inbox(data)
            else:
                self._route(channel, data)
        except Exception:
            self._log.exception("failed to handle a backend message on %r", channel)

    def _on_broadcast(self, data: bytes) -> None:
        header, body = decode_envelope(data)
        kind = header.get("t")
        if kind == "bc":
            room = header.get("r")
            exclude: Any = header.get("x") or ()
            if room is None:
                self.deliver_all(body, exclude)
            else:
                members = self.rooms.get(room)
                if members:
                    targets = members.difference(exclude) if exclude else set(members)
                    self.deliver(targets, body)
        elif kind == "clear":
            room = header.get("r")
            if isinstance(room, str):
                self._on_room_clear(room)
        else:
            self._log.warning("unknown broadcast message type %r", kind)

    def _on_inbox(self, data: bytes) -> None:
        header, body = decode_envelope(data)
        kind = header.get("t")
        if kind == "send":
            connection = self.connections.get(header.get("c", ""))
            if connection is not None:
                connection.send(body)
        elif kind == "room":
            room, connection_id = header.get("r"), header.get("c")
            op = header.get("op")
            if isinstance(room, str) and isinstance(connection_id, str) and op in ("join", "leave"):
                self._on_room_control(op, room, connection_id)
        else:
            self._log.warning("unknown inbox message type %r", kind)

    def _route(self, channel: str, data: bytes) -> None:
        for prefix, route in self._routes:
            if channel.startswith(prefix):
                route(channel, data)
                return
        self._log.debug("no route for backend message on %r", channel)
