"""Per-record write slots of one instance: writes of one record wait for each other.

Both backends serialise the writes of a record that may interleave on their instance (Redis:
every write; memory: read-modify-write updates, whose function may await), so that tasks of one
instance never race each other into conflicts. A slot exists only while some task writes or
waits to write its record.

A task holding a slot that tries to write the same record again (an update function writing
the record it updates) would wait for itself until the deadline: :meth:`RecordSlots.acquire`
raises ``RuntimeError`` instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = ["RecordSlot", "RecordSlots"]


@dataclass(slots=True)
class RecordSlot:
    """The writers of one record on this instance.

    Attributes:
        lock: Held by the writing task.
        users: Tasks writing or waiting to write the record.
        holder: The task holding ``lock``, if any.
        contended_until: Event-loop time until which writes pause briefly first (set by the
            Redis writer after a conflict, for fairness between instances).
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    holder: asyncio.Task[object] | None = None
    contended_until: float = 0.0


class RecordSlots:
    """The :class:`RecordSlot` of every record being written on this instance."""

    def __init__(self) -> None:
        self._slots: dict[str, RecordSlot] = {}

    def check_reentry(self, record_id: str) -> None:
        """Raise ``RuntimeError`` if the current task holds the slot of ``record_id``."""
        slot = self._slots.get(record_id)
        if slot is not None and slot.holder is not None and slot.holder is asyncio.current_task():
            raise RuntimeError(
                f"record {record_id!r} written while this task updates it: an update function "
                "must return the new value, not write the record"
            )

    async def acquire(self, record_id: str) -> RecordSlot:
        """Wait for the slot of ``record_id``; pair with :meth:`release` (also on failure).

        Raises:
            RuntimeError: The current task already holds it.
        """
        self.check_reentry(record_id)
        slot = self._slots.get(record_id)
        if slot is None:
            slot = self._slots[record_id] = RecordSlot()
        slot.users += 1
        try:
            await slot.lock.acquire()
        except BaseException:
            self._leave(record_id, slot)
            raise
        slot.holder = asyncio.current_task()
        return slot

    def release(self, record_id: str, slot: RecordSlot) -> None:
        """Give back a slot returned by :meth:`acquire`."""
        slot.holder = None
        slot.lock.release()
        self._leave(record_id, slot)

    def _leave(self, record_id: str, slot: RecordSlot) -> None:
        slot.users -= 1
        if slot.users == 0 and self._slots.get(record_id) is slot:
            del self._slots[record_id]
