"""Memory implementation of :class:`~mesh_server.backends.interfaces.records.RecordStore`."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesh_sdk.protocol.codec import dumps, loads
from mesh_sdk.protocol.errors import ConflictError, TooLargeError, UnavailableError
from mesh_sdk.protocol.patch import changes, combine
from mesh_server.backends.interfaces.records import (
    MergeStrategy,
    RecordStore,
    RecordUpdater,
    RecordWrite,
)
from mesh_server.backends.memory.state import MemoryState
from mesh_server.backends.messages import record_channel
from mesh_server.backends.slots import RecordSlots

if TYPE_CHECKING:
    from mesh_server.backends.base import BackendStats

__all__ = ["MemoryRecords"]


class MemoryRecords(MemoryState, RecordStore):
    """Records as ``(encoded value, version)``; each write is one step with its event."""

    _operation_timeout: float
    _retry: tuple[float, float]
    _slots: RecordSlots
    _stats: BackendStats

    async def get_record(self, record_id: str) -> tuple[Any, int]:
        """Return ``(value, version)``, ``(None, 0)`` when absent."""
        stored = self._s.records.get(record_id)
        if stored is None:
            return None, 0
        return loads(stored[0]), stored[1]

    async def write_record(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy = "replace",
        *,
        max_size: int | None = None,
        validate: Callable[[Any], None] | None = None,
        expected_version: int | None = None,
    ) -> RecordWrite:
        """Combine, check, diff, store with version + 1 and publish, in one step (§11.3).

        The size limit and ``validate`` apply to every write, also one that changes nothing.
        """
        self._slots.check_reentry(record_id)
        return self._write_now(record_id, value, strategy, max_size, validate, expected_version)

    async def update_record(
        self,
        record_id: str,
        fn: RecordUpdater,
        *,
        max_size: int | None = None,
        validate: Callable[[Any], None] | None = None,
    ) -> RecordWrite:
        """Run ``fn`` on the current value and commit unless a write came in between."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._operation_timeout
        try:
            async with asyncio.timeout_at(deadline):
                slot = await self._slots.acquire(record_id)
        except TimeoutError:
            raise UnavailableError("memory backend: update record timed out") from None
        try:
            return await self._update_locked(record_id, fn, max_size, validate, deadline)
        finally:
            self._slots.release(record_id, slot)

    async def _update_locked(
        self,
        record_id: str,
        fn: RecordUpdater,
        max_size: int | None,
        validate: Callable[[Any], None] | None,
        deadline: float,
    ) -> RecordWrite:
        loop = asyncio.get_running_loop()
        base, ceiling = self._retry
        attempt = 0
        while True:
            if attempt:
                await asyncio.sleep(random.uniform(0, min(ceiling, base * 2 ** (attempt - 1))))
            if loop.time() > deadline:
                raise UnavailableError("memory backend: update record timed out (conflicts)")
            stored = self._s.records.get(record_id)
            version = 0 if stored is None else stored[1]
            new = fn(None if stored is None else loads(stored[0]))
            if inspect.isawaitable(new):
                budget = asyncio.timeout_at(deadline)
                try:
                    async with budget:
                        new = await new
                except TimeoutError:
                    # fn's own TimeoutError propagates; the deadline's means unavailability.
                    if budget.expired():
                        raise UnavailableError("memory backend: update record timed out") from None
                    raise
            # Every write stores a new tuple: the same object means nothing was written.
            if self._s.records.get(record_id) is not stored:
                attempt += 1
                self._stats.record_retries += 1
                continue
            return self._write_now(record_id, new, "replace", max_size, validate, version)

    def _write_now(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy,
        max_size: int | None,
        validate: Callable[[Any], None] | None,
        expected_version: int | None,
    ) -> RecordWrite:
        """One write, without awaiting: an atomic step on the event loop."""
        stored = self._s.records.get(record_id)
        old, version = (None, 0) if stored is None else (loads(stored[0]), stored[1])
        if expected_version is not None and version != expected_version:
            self._stats.record_conflicts += 1
            raise ConflictError.for_record(record_id, expected_version, version)
        encoded = dumps(combine(old, value, strategy))
        if max_size is not None and len(encoded) > max_size:
            raise TooLargeError(
                f"record {record_id!r} would exceed {max_size} bytes",
                details={"limit": max_size},
            )
        new = loads(encoded)
        if validate is not None:
            validate(loads(encoded))
        patch = changes(old, new)
        if patch is None:
            return RecordWrite(changed=False, version=version, value=old, size=len(encoded))
        version += 1
        self._s.records[record_id] = (encoded, version)
        self._emit(
            record_channel(self.namespace, record_id),
            {
                "t": "update",
                "recordId": record_id,
                "version": version,
                "value": new,
                "patch": patch,
            },
        )
        return RecordWrite(changed=True, version=version, value=new, patch=patch, size=len(encoded))

    async def delete_record(self, record_id: str) -> int | None:
        """Delete the record and publish the deletion; ``None`` if it was absent."""
        stored = self._s.records.pop(record_id, None)
        if stored is None:
            return None
        version = stored[1]
        self._emit(
            record_channel(self.namespace, record_id),
            {"t": "deleted", "recordId": record_id, "version": version},
        )
        return version
