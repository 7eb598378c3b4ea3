"""Key layout of the Redis backend (``ns`` = namespace, default ``mesh:``).

Every name is ``{ns}`` + a fixed word, with user-supplied parts (room, connection, record,
channel and instance ids) followed only by a fixed suffix, so no two entities share a key.

=====================================  ======  ===============================================
key                                    type    content
=====================================  ======  ===============================================
``{ns}instances``                      set     registered instance ids (the registry)
``{ns}instance:{id}:hb``               string  heartbeat, ``PX`` = instance TTL
``{ns}instance:{id}:conns``            set     connection ids held by the instance
``{ns}instance:{id}:claim``            string  dead-instance claim (``SET NX PX``)
``{ns}conns``                          hash    connection id → instance id (routing)
``{ns}conn:{id}:rooms``                set     rooms the connection is a member of
``{ns}conn-meta``                      hash    connection id → metadata JSON
``{ns}room-meta``                      hash    room → metadata JSON
``{ns}rooms``                          set     rooms with at least one member
``{ns}room:{room}:members``            set     member connection ids
``{ns}room:{room}:presence``           set     present connection ids (⊆ members)
``{ns}room:{room}:states``             hash    connection id → presence state JSON
``{ns}deadlines``                      zset    presence/state deadlines (backend-clock ms)
``{ns}history:{channel}``              list    channel history, newest first
``{ns}record:{id}``                    hash    ``v`` = value JSON, ``n`` = version
=====================================  ======  ===============================================

Members of ``{ns}deadlines`` are ``kind + len(room) + ":" + room + connection_id`` with kind
``p`` (presence) or ``s`` (state expiry): the length prefix makes the encoding unambiguous for
any room and connection id. Lengths are UTF-8 byte counts (Lua's ``#``).
"""

from __future__ import annotations

__all__ = ["Keys"]


class Keys:
    """Builds key names for one namespace (Lua scripts derive the same names, see ``lib.lua``)."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self.instances = f"{namespace}instances"
        self.conns = f"{namespace}conns"
        self.conn_meta = f"{namespace}conn-meta"
        self.room_meta = f"{namespace}room-meta"
        self.rooms = f"{namespace}rooms"
        self.deadlines = f"{namespace}deadlines"

    def heartbeat(self, instance_id: str) -> str:
        """Return the heartbeat key of an instance."""
        return f"{self.ns}instance:{instance_id}:hb"

    def instance_conns(self, instance_id: str) -> str:
        """Return the set of connection ids held by an instance."""
        return f"{self.ns}instance:{instance_id}:conns"

    def claim(self, instance_id: str) -> str:
        """Return the dead-instance claim key of an instance."""
        return f"{self.ns}instance:{instance_id}:claim"

    def conn_rooms(self, connection_id: str) -> str:
        """Return the set of rooms a connection is a member of."""
        return f"{self.ns}conn:{connection_id}:rooms"

    def room_members(self, room: str) -> str:
        """Return the member set of a room."""
        return f"{self.ns}room:{room}:members"

    def room_presence(self, room: str) -> str:
        """Return the set of connections present in a room."""
        return f"{self.ns}room:{room}:presence"

    def room_states(self, room: str) -> str:
        """Return the hash of presence states of a room."""
        return f"{self.ns}room:{room}:states"

    def history(self, channel: str) -> str:
        """Return the history list of an application channel."""
        return f"{self.ns}history:{channel}"

    def record(self, record_id: str) -> str:
        """Return the hash holding a record's value and version."""
        return f"{self.ns}record:{record_id}"

    # ------------------------------------------------------------------ KEYS of each script
    # In the order each script's header declares them (lua/*.lua).

    def for_heartbeat(self, instance_id: str) -> list[str]:
        """KEYS of ``heartbeat``."""
        return [self.heartbeat(instance_id), self.instances]

    def for_claim_instance(self, instance_id: str) -> list[str]:
        """KEYS of ``claim_instance``."""
        return [
            self.claim(instance_id),
            self.heartbeat(instance_id),
            self.instances,
            self.instance_conns(instance_id),
        ]

    def for_release_instance(self, instance_id: str) -> list[str]:
        """KEYS of ``release_instance``."""
        return [
            self.claim(instance_id),
            self.heartbeat(instance_id),
            self.instance_conns(instance_id),
            self.instances,
            self.deadlines,
            self.rooms,
            self.conn_meta,
            self.conns,
        ]

    def for_register_connections(self, instance_id: str) -> list[str]:
        """KEYS of ``register_connections``."""
        return [self.conns, self.instance_conns(instance_id), self.conn_meta]

    def for_unregister_connection(self, connection_id: str, instance_id: str) -> list[str]:
        """KEYS of ``unregister_connection`` (``instance_id``: the connection's owner)."""
        return [
            self.conn_rooms(connection_id),
            self.deadlines,
            self.rooms,
            self.conn_meta,
            self.conns,
            self.instance_conns(instance_id),
        ]

    def for_join_room(self, room: str, connection_id: str) -> list[str]:
        """KEYS of ``join_room``."""
        return [
            self.room_members(room),
            self.room_presence(room),
            self.deadlines,
            self.rooms,
            self.conn_rooms(connection_id),
            self.conns,
        ]

    def for_leave_room(self, room: str, connection_id: str) -> list[str]:
        """KEYS of ``leave_room``."""
        return [
            self.room_members(room),
            self.room_presence(room),
            self.room_states(room),
            self.deadlines,
            self.rooms,
            self.conn_rooms(connection_id),
        ]

    def for_clear_room(self, room: str) -> list[str]:
        """KEYS of ``clear_room``."""
        return [
            self.room_members(room),
            self.room_presence(room),
            self.room_states(room),
            self.deadlines,
            self.rooms,
            self.room_meta,
        ]

    def for_refresh_presence(self, rooms: list[str]) -> list[str]:
        """KEYS of ``refresh_presence`` for ``rooms`` (in the order of its ARGV)."""
        keys = [self.deadlines]
        for room in rooms:
            keys += [self.room_members(room), self.room_presence(room)]
        return keys

    def for_presence_state(self, room: str) -> list[str]:
        """KEYS of ``set_presence_state`` and ``clear_presence_state``."""
        return [self.room_states(room), self.room_presence(room), self.deadlines]
