"""Record writes on Redis: one writer per record per instance, a state cache, one-command commits.

A write (protocol.md §11.3) combines the new value with the stored one in Python (merge strategies,
size limit, validation, diff), then commits with the ``record_commit`` script, which stores
version n + 1 and publishes the update iff the record is still at version n of the same
*incarnation* (a random token set at creation, so a deleted and re-created record never matches
an older state). How many commands that takes:

* **Serialised per instance.** Writes of one record on one instance wait for each other
  (an :class:`asyncio.Lock` per record that is being written), so tasks of one instance never
  race each other into conflicts.
* **Cached state.** The instance keeps the last known ``(incarnation, version, value)`` of
  recently written records (a bounded LRU cache, :mod:`.record_cache`). An uncontended write is
  the commit script alone: **one command**. The cache is refreshed by every commit and conflict
  reply, dropped when this instance deletes the record, and dropped when a record event this
  instance receives shows a newer version or a deletion (:meth:`RecordWriter.observe`).
* **Conflicts re-read once.** A failed commit returns the current state, so the retry needs no
  read: a write that loses one race costs two commands. The first write of a record on an
  instance (nothing cached) reads it once first (``HMGET``).
* **Fair under contention.** After a conflict, retries wait a jittered, exponentially growing
  pause, and for ``retry_max_s`` after any conflict each write of that record on this instance
  first waits a jittered pause of up to ``retry_base_s``: instances that keep winning leave
  gaps for the others, so no instance starves and a write costs about as many commands as
  there are instances writing the record at the same time.
* **Stale state never decides an outcome.** A write found unchanged, too large or invalid
  against *cached* state re-reads the record and recomputes before it answers so.
* **Compare-and-set and updates cost the same.** A write with an expected version commits with
  the same script (a cached state at another version is confirmed by one read before the
  ``ConflictError``). An update runs its function on the cached state inside the record's slot
  and commits like a write; a conflict runs the function again on the state the script
  returned. Writes of the record by the updating task itself raise ``RuntimeError``
  (:mod:`mesh_server.backends.slots`).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis

from mesh_sdk.protocol.codec import dumps, loads
from mesh_sdk.protocol.errors import ConflictError, TooLargeError, UnavailableError
from mesh_sdk.protocol.patch import changes, combine
from mesh_server.backends.interfaces.records import (
    MergeStrategy,
    RecordStore,
    RecordUpdater,
    RecordWrite,
)
from mesh_server.backends.messages import record_channel
from mesh_server.backends.redis.keys import Keys
from mesh_server.backends.redis.record_cache import RecordState, StateCache
from mesh_server.backends.redis.scripts import Scripts
from mesh_server.backends.redis.state import RedisState
from mesh_server.backends.slots import RecordSlot, RecordSlots

__all__ = ["RecordWriter", "RedisRecords", "UpdateAborted"]

_DELETED_PREFIX: Final = b'{"t":"deleted"'
_VERSION_KEY: Final = b',"version":'


@dataclass(frozen=True, slots=True)
class _Plan:
    """A computed write: the combined value and, if it changed, its commit arguments."""

    old: Any
    new: Any
    encoded: bytes
    patch: list[dict[str, Any]] | None
    """RFC 6902 operations from ``old`` to ``new``; ``None`` when unchanged."""


class RecordWriter:
    """Writes records of one Redis backend (see the module docstring for the costs).

    Args:
        client: The backend's command client.
        scripts: The backend's scripts.
        keys: The backend's key names.
        cache_entries: Most records whose state is cached (0 disables the cache).
        cache_bytes: Most bytes of cached values; larger values are not cached.
        retry_base_s: First jittered pause after a conflict, in seconds.
        retry_max_s: Longest pause, in seconds; also how long a conflict keeps later writes of
            that record pausing first.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        scripts: Scripts,
        keys: Keys,
        *,
        cache_entries: int,
        cache_bytes: int,
        retry_base_s: float,
        retry_max_s: float,
    ) -> None:
        self._client = client
        self._scripts = scripts
        self._keys = keys
        self._cache = StateCache(cache_entries, cache_bytes)
        self._slots = RecordSlots()
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._prefix = record_channel(keys.ns, "")
        self.conflicts = 0
        """Writes refused with ``ECONFLICT`` (for metrics)."""
        self.retries = 0
        """Commits after the first of one write, each after a concurrent write (for metrics)."""

    # ------------------------------------------------------------------ cache maintenance

    def observe(self, channel: str, data: bytes) -> None:
        """Drop cached state that a received record event shows to be outdated.

        Called for every pub/sub message before the server sees it; costs a prefix check for
        other channels. Events are built by this backend (``{"t":"update"|"deleted",
        "recordId":…,"version":N,…}``), so the version is found without decoding the value: a
        quote right after a comma never occurs inside a JSON string.
        """
        if not channel.startswith(self._prefix):
            return
        record_id = channel[len(self._prefix) :]
        state = self._cache.get(record_id)
        if state is None:
            return
        if data.startswith(_DELETED_PREFIX):
            self._cache.drop(record_id)
            return
        start = data.find(_VERSION_KEY)
        if start < 0:
            self._cache.drop(record_id)
            return
        start += len(_VERSION_KEY)
        end = start
        while end < len(data) and 48 <= data[end] <= 57:
            end += 1
        if end == start or int(data[start:end]) > state.version:
            self._cache.drop(record_id)

    def forget(self, record_id: str) -> None:
        """Drop the cached state of ``record_id`` (after this instance deleted it)."""
        self._cache.drop(record_id)

    def clear(self) -> None:
        """Drop every cached state (after the store was lost)."""
        self._cache.clear()

    # ------------------------------------------------------------------ writes

    async def write(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy,
        *,
        max_size: int | None,
        validate: Callable[[Any], None] | None,
        expected_version: int | None,
        deadline: float,
    ) -> RecordWrite:
        """Combine, check and commit one write; waits for earlier writes of the record here.

        Raises:
            ConflictError: The record is not at ``expected_version`` (checked against the
                store, never only against cached state).
            TooLargeError: The combined value exceeds ``max_size``.
            UnavailableError: ``deadline`` (event-loop time) passed.
        """
        change = _Change(value, strategy, None, expected_version)
        return await self._serialised(record_id, change, max_size, validate, deadline)

    async def update(
        self,
        record_id: str,
        fn: RecordUpdater,
        *,
        max_size: int | None,
        validate: Callable[[Any], None] | None,
        deadline: float,
    ) -> RecordWrite:
        """Read-modify-write: commit ``fn(current)`` iff the record is still at that state.

        A conflict runs ``fn`` again on the state the failed commit returned. An exception of
        ``fn`` propagates wrapped in :class:`UpdateAborted` (so that no boundary translates it).

        Raises:
            UpdateAborted: ``fn`` raised (on the current state).
            TooLargeError: The new value exceeds ``max_size``.
            UnavailableError: ``deadline`` (event-loop time) passed.
        """
        change = _Change(None, "replace", fn, None)
        return await self._serialised(record_id, change, max_size, validate, deadline)

    async def _serialised(
        self,
        record_id: str,
        change: _Change,
        max_size: int | None,
        validate: Callable[[Any], None] | None,
        deadline: float,
    ) -> RecordWrite:
        slot = await self._slots.acquire(record_id)
        try:
            return await self._write_locked(slot, record_id, change, max_size, validate, deadline)
        finally:
            self._slots.release(record_id, slot)

    async def _read(self, key: str) -> RecordState:
        raw_value, raw_version, raw_incarnation = await self._client.hmget(key, ["v", "n", "i"])
        return RecordState.from_raw(raw_value, raw_version, raw_incarnation)

    async def _pause(self, slot: RecordSlot, attempt: int) -> None:
        loop = asyncio.get_running_loop()
        if attempt:
            ceiling = min(self._retry_max_s, self._retry_base_s * 2 ** (attempt - 1))
        elif loop.time() < slot.contended_until:
            ceiling = self._retry_base_s
        else:
            return
        await asyncio.sleep(random.uniform(0, ceiling))

    async def _write_locked(
        self,
        slot: RecordSlot,
        record_id: str,
        change: _Change,
        max_size: int | None,
        validate: Callable[[Any], None] | None,
        deadline: float,
    ) -> RecordWrite:
        loop = asyncio.get_running_loop()
        key = self._keys.record(record_id)
        state = self._cache.get(record_id)
        cached = state is not None
        attempt = 0
        expected = change.expected_version
        while True:
            await self._pause(slot, attempt)
            # Checked here rather than left to asyncio.timeout: redis-py may swallow a
            # cancellation that lands while a command is in flight.
            if loop.time() > deadline:
                what = "write" if change.fn is None else "update"
                raise UnavailableError(f"Redis backend: {what} record timed out (conflicts)")
            if state is None:
                state, cached = await self._read(key), False
            if expected is not None and state.version != expected:
                if not cached:
                    self.conflicts += 1
                    raise ConflictError.for_record(record_id, expected, state.version)
                state, cached = await self._read(key), False
                continue
            try:
                old = state.decode()
                if change.fn is None:
                    combined = combine(old, change.value, change.strategy)
                else:
                    combined = await _updated(change.fn, state)
                plan = _plan(record_id, old, combined, max_size, validate)
            except Exception:
                if not cached:
                    raise
                fresh = await self._read(key)
                if fresh.same(state):
                    raise
                state, cached = fresh, False
                continue
            if plan.patch is None:
                if cached:
                    fresh = await self._read(key)
                    if not fresh.same(state):
                        state, cached = fresh, False
                        continue
                return RecordWrite(False, state.version, plan.old, size=len(plan.encoded))
            if attempt:
                self.retries += 1
            committed, state = await self._commit(record_id, key, state, plan, plan.patch)
            self._cache.put(record_id, state)
            if committed:
                return RecordWrite(
                    True, state.version, plan.new, plan.patch, size=len(plan.encoded)
                )
            cached = False
            slot.contended_until = loop.time() + self._retry_max_s
            attempt += 1

    async def _commit(
        self, record_id: str, key: str, state: RecordState, plan: _Plan, patch: list[dict[str, Any]]
    ) -> tuple[bool, RecordState]:
        """Run the commit script: ``(True, new state)``, or ``(False, current state)``."""
        version = state.version + 1
        incarnation = state.incarnation if state.version else os.urandom(8).hex().encode()
        # Same bytes as dumps({"t","recordId","version","value","patch"}), the value not
        # encoded twice.
        event = b"".join(
            (
                b'{"t":"update","recordId":',
                dumps(record_id),
                b',"version":',
                str(version).encode(),
                b',"value":',
                plan.encoded,
                b',"patch":',
                dumps(patch),
                b"}",
            )
        )
        try:
            reply = await self._scripts.run(
                "record_commit",
                [key],
                state.version,
                state.incarnation,
                incarnation,
                plan.encoded,
                self._prefix + record_id,
                event,
            )
        except BaseException:
            # Committed or not: the outcome is unknown, so the cached state may be stale.
            self._cache.drop(record_id)
            raise
        if int(reply[0]) == 1:
            return True, RecordState(incarnation, version, plan.encoded)
        return False, RecordState.from_raw(reply[1], reply[2], reply[3])


class UpdateAborted(Exception):
    """Carries the exception an update function raised past the backend's error boundary.

    Attributes:
        error: What the function raised.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True, slots=True)
class _Change:
    """What a write asks for: ``value`` combined per ``strategy``, or ``fn(current)``."""

    value: Any
    strategy: MergeStrategy
    fn: RecordUpdater | None
    expected_version: int | None


async def _updated(fn: RecordUpdater, state: RecordState) -> Any:
    """Return ``fn(current)`` (``fn`` gets a copy of its own, which it may mutate)."""
    try:
        new = fn(state.decode())
        if inspect.isawaitable(new):
            new = await new
    except Exception as exc:
        raise UpdateAborted(exc) from exc
    return new


def _plan(
    record_id: str,
    old: Any,
    combined: Any,
    max_size: int | None,
    validate: Callable[[Any], None] | None,
) -> _Plan:
    """Check ``combined`` over ``old``; the size limit and ``validate`` apply to every write."""
    # Encoding and decoding the combined value shares nothing with the caller's value.
    encoded = dumps(combined)
    if max_size is not None and len(encoded) > max_size:
        raise TooLargeError(
            f"record {record_id!r} would exceed {max_size} bytes", details={"limit": max_size}
        )
    new = loads(encoded)
    if validate is not None:
        validate(loads(encoded))
    return _Plan(old, new, encoded, changes(old, new))


class RedisRecords(RedisState, RecordStore):
    """The record operations of the Redis backend (writes through :class:`RecordWriter`)."""

    _records: RecordWriter

    async def get_record(self, record_id: str) -> tuple[Any, int]:
        """Return ``(value, version)``, ``(None, 0)`` when absent."""
        async with self._guard("get record"):
            raw_value, raw_version = await self._client.hmget(
                self._keys.record(record_id), ["v", "n"]
            )
        if raw_version is None:
            return None, 0
        return loads(raw_value or b"null"), int(raw_version)

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
        """Commit with one script call when uncontended (see :mod:`.records`)."""
        async with self._guard("write record", deadline_is_failure=False):
            return await self._records.write(
                record_id,
                value,
                strategy,
                max_size=max_size,
                validate=validate,
                expected_version=expected_version,
                deadline=self._deadline(),
            )

    async def update_record(
        self,
        record_id: str,
        fn: RecordUpdater,
        *,
        max_size: int | None = None,
        validate: Callable[[Any], None] | None = None,
    ) -> RecordWrite:
        """Run ``fn`` on the cached or read state and commit with one script call if current."""
        try:
            async with self._guard("update record", deadline_is_failure=False):
                return await self._records.update(
                    record_id, fn, max_size=max_size, validate=validate, deadline=self._deadline()
                )
        except UpdateAborted as aborted:
            error = aborted.error
        # Raised outside the handler so that nothing is chained to the function's exception.
        raise error

    async def delete_record(self, record_id: str) -> int | None:
        """Delete value and version and publish the deletion (``None`` if absent)."""
        async with self._guard("delete record"):
            version = await self._scripts.run(
                "record_delete",
                [self._keys.record(record_id)],
                record_channel(self.namespace, record_id),
                dumps(record_id),
            )
        self._records.forget(record_id)
        return int(version) if version is not None else None
