"""Records: versioned JSON values with full and patch subscriptions (protocol.md §11).

Writes (server code and ``mesh/publish-record-update``) are one atomic backend step that
publishes ``{"t":"update","recordId","version","value","patch"}`` on ``{ns}record:{id}``; each
instance subscribed to that channel builds the ``full`` frame and the ``patch`` frame once and
sends each subscriber the one of its mode (§11.3, §11.5). A write may name the version it
expects (``expected_version``, ``expectedVersion`` on the wire): at another version it stores
nothing and raises ``ECONFLICT``. :meth:`RecordManager.update` is the read-modify-write form:
the backend runs the caller's function on the current value and commits only if nothing was
written in between, else runs it again on the newer value.

Per subscription the manager keeps the last version the client was given (its *acknowledged*
version): the subscribe response's version, then each pushed one. Versions not above it are
never pushed, so after a subscribe answered with version ``v`` the client gets no version ≤ ``v``
and later versions in increasing order. A subscription being set up is pending: its events are
held back and replayed through the same filter right after the response (§11.5).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from mesh_sdk.protocol.codec import loads
from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.errors import ForbiddenError, TooLargeError
from mesh_sdk.protocol.generated.models import (
    PublishRecordUpdateRequest,
    PublishRecordUpdateResponse,
    SubscribeRecordDenied,
    SubscribeRecordRequest,
    SubscribeRecordSuccess,
    UnsubscribeRecordRequest,
    UnsubscribeRecordResponse,
)
from mesh_server.backends.base import MERGE_STRATEGIES
from mesh_server.backends.messages import record_channel
from mesh_server.exposure import (
    Guard,
    Pattern,
    RecordExposure,
    SubscriptionQuota,
    WriteGuard,
    check_name,
)
from mesh_server.features import Builtin
from mesh_server.quotas import RecordWriteBudget
from mesh_server.record_frames import RecordFrames, RecordSub, deletion_applies
from mesh_server.subscribers import BackendChannels

if TYPE_CHECKING:
    from mesh_server.backends.base import MergeStrategy, RecordWrite
    from mesh_server.features import ConnectionLike, MessageRoute, ServerCore

__all__ = ["RecordManager"]


def _check_version(expected_version: int | None) -> None:
    # bool is an int subclass; a version is a plain non-negative int (§11.2).
    if expected_version is not None and (type(expected_version) is not int or expected_version < 0):
        raise ValueError(f"expected_version must be an int >= 0, not {expected_version!r}")


class RecordManager:
    """Record exposure, subscriptions, writes and deletion."""

    def __init__(self, core: ServerCore, pubsub: BackendChannels, quota: SubscriptionQuota) -> None:
        self._core = core
        self._pubsub = pubsub
        self._quota = quota
        self._exposure = RecordExposure()
        self._subs: dict[str, dict[str, RecordSub]] = {}
        self._by_connection: dict[str, set[str]] = {}
        self._prefix = record_channel(core.namespace, "")
        self._tasks: set[asyncio.Task[None]] = set()
        limits = core.limits
        self._budget = RecordWriteBudget(
            limits.record_write_rate,
            limits.record_write_burst,
            limits.max_record_bytes_per_connection,
        )

    # ------------------------------------------------------------------ server API

    def expose(self, pattern: Pattern, guard: Guard | None = None) -> None:
        """Let clients read (subscribe to) records matching ``pattern`` (§11.1)."""
        self._exposure.readable.add(pattern, guard)

    def expose_writable(self, pattern: Pattern, guard: WriteGuard | None = None) -> None:
        """Let clients write (and so read) records matching ``pattern`` (§11.1).

        ``guard`` is ``(connection, record_id)`` or ``(connection, record_id, value)`` (see
        :mod:`mesh_server.exposure`; the form is read from its signature here, once).
        """
        self._exposure.writable.add(pattern, guard)

    async def publish_update(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy = "replace",
        *,
        expected_version: int | None = None,
    ) -> RecordWrite:
        """Write a record from server code (§11.3); pushes reach every subscriber.

        Args:
            record_id: The record.
            value: The value (a JSON value or pydantic model), combined per ``strategy``.
            strategy: ``"replace"``, ``"merge"`` or ``"deepMerge"``.
            expected_version: Write only if the record is at this version (0: absent).

        Raises:
            ConflictError: The record is not at ``expected_version`` (``ECONFLICT``, details
                ``{"expected", "actual"}``); nothing was stored.
            ValidationError: The contract's record schema rejects the combined value.
            TooLargeError: The combined value exceeds ``max_record_size``.
            UnavailableError: The backend is unreachable.
        """
        if strategy not in MERGE_STRATEGIES:
            raise ValueError(f"unknown merge strategy {strategy!r}")
        _check_version(expected_version)
        return await self._write(
            record_id, to_jsonable(value), strategy, expected_version=expected_version
        )

    async def update(self, record_id: str, fn: Callable[[Any], Any]) -> RecordWrite:
        """Atomically read, modify and write a record (§11.3): ``fn(current) -> new``.

        ``fn`` (sync or async) may return a pydantic model; it runs again on the newer value
        when a write came in between, and an exception it raises propagates unchanged (see
        :meth:`mesh_server.backends.base.Backend.update_record`).

        Raises:
            ValidationError: The contract's record schema rejects the new value.
            TooLargeError: The new value exceeds ``max_record_size``.
            UnavailableError: The backend is unreachable, or the deadline passed (conflicts).
        """

        async def compute(current: Any) -> Any:
            new = fn(current)
            if inspect.isawaitable(new):
                new = await new
            return to_jsonable(new)

        return await self._limit_details(
            self._core.limits.max_record_size,
            self._core.backend.update_record(
                record_id,
                compute,
                max_size=self._core.limits.max_record_size,
                validate=self._validator(record_id),
            ),
        )

    async def get(self, record_id: str) -> tuple[Any, int]:
        """Return ``(value, version)``; ``(None, 0)`` when absent."""
        return await self._core.backend.get_record(record_id)

    async def delete(self, record_id: str) -> int | None:
        """Delete a record (§11.6); subscribers get ``mesh/record-deleted``.

        Returns:
            The last version, or ``None`` if the record was absent.
        """
        return await self._core.backend.delete_record(record_id)

    def subscribers(self, record_id: str) -> dict[str, str]:
        """Return local connection id → mode for ``record_id``."""
        return {cid: sub.mode for cid, sub in self._subs.get(record_id, {}).items()}

    async def _write(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy,
        quota: int | None = None,
        *,
        expected_version: int | None = None,
    ) -> RecordWrite:
        """Write through the backend; ``quota`` is the connection's byte allowance, if any."""
        limit = self._core.limits.max_record_size
        max_size = limit if quota is None else min(limit, quota)
        if max_size < 1:  # not even the shortest JSON value fits
            raise self._budget.refused(record_id)
        write = self._core.backend.write_record(
            record_id,
            value,
            strategy,
            max_size=max_size,
            validate=self._validator(record_id),
            expected_version=expected_version,
        )
        try:
            return await self._limit_details(max_size, write)
        except TooLargeError as exc:
            if max_size < limit:
                raise self._budget.refused(record_id) from exc
            raise

    async def _limit_details(self, max_size: int, write: Awaitable[RecordWrite]) -> RecordWrite:
        """Await ``write``; a size refusal without details gets ``{"limit": max_size}``."""
        try:
            return await write
        except TooLargeError as exc:
            if exc.details is None:
                exc.details = {"limit": max_size}
            raise

    def _validator(self, record_id: str) -> Callable[[Any], None] | None:
        contract = self._core.contract
        spec = contract.record_for(record_id) if contract is not None else None
        if spec is None:
            return None
        validate = spec.validate_value

        def check(value: Any) -> None:
            validate(value)

        return check

    # ------------------------------------------------------------------ built-ins

    def builtin_commands(self) -> Mapping[str, Builtin[Any]]:
        """Return the record built-ins (§7)."""
        return {
            "mesh/subscribe-record": Builtin(SubscribeRecordRequest, self._subscribe),
            "mesh/unsubscribe-record": Builtin(UnsubscribeRecordRequest, self._unsubscribe),
            "mesh/publish-record-update": Builtin(PublishRecordUpdateRequest, self._publish),
        }

    def _record_id(self, command: str, record_id: str) -> str:
        check_name(command, "recordId", record_id, self._core.limits.max_name_length)
        return record_id

    async def _subscribe(
        self, connection: ConnectionLike, request: SubscribeRecordRequest
    ) -> SubscribeRecordSuccess | SubscribeRecordDenied:
        record_id = self._record_id("mesh/subscribe-record", request.recordId)
        if not await self._exposure.can_read(connection, record_id):
            return SubscribeRecordDenied.model_construct(success=False)
        mode = request.mode or "full"
        cid = connection.id
        subs = self._subs.get(record_id)
        sub = subs.get(cid) if subs is not None else None
        repeat = sub is not None
        if sub is None:
            self._quota.reserve(cid)
            sub = RecordSub(mode)
            self._subs.setdefault(record_id, {})[cid] = sub
            self._by_connection.setdefault(cid, set()).add(record_id)
        else:
            sub.mode = mode  # §7: repeating a record subscription replaces its mode
        sub.holds += 1
        channel = self._prefix + record_id
        try:
            if not repeat:
                await self._pubsub.acquire(channel)
                if self._subs.get(record_id, {}).get(cid) is sub:
                    sub.acquired = True
                else:  # ended meanwhile (disconnect): give the backend hold back
                    await self._pubsub.release(channel)
            value, version = await self._core.backend.get_record(record_id)
        except BaseException:
            if repeat:
                self._unhold(record_id, cid, sub)
            else:
                await self._end(record_id, cid, sub)
            raise
        # §11.5: nothing at or below the answered version follows the response.
        sub.acked = max(sub.acked, version)
        connection.after_response(lambda: self._unhold(record_id, cid, sub))
        return SubscribeRecordSuccess.model_construct(success=True, record=value, version=version)

    async def _unsubscribe(
        self, connection: ConnectionLike, request: UnsubscribeRecordRequest
    ) -> UnsubscribeRecordResponse:
        record_id = self._record_id("mesh/unsubscribe-record", request.recordId)
        sub = self._subs.get(record_id, {}).get(connection.id)
        if sub is None:
            return UnsubscribeRecordResponse.model_construct(False)
        await self._end(record_id, connection.id, sub)
        return UnsubscribeRecordResponse.model_construct(True)

    async def _publish(
        self, connection: ConnectionLike, request: PublishRecordUpdateRequest
    ) -> PublishRecordUpdateResponse:
        command = "mesh/publish-record-update"
        record_id = self._record_id(command, request.recordId)
        if not await self._exposure.can_write(connection, record_id, request.newValue):
            raise ForbiddenError(f'Record "{record_id}" is not writable by this connection.')
        options = request.options
        strategy = options.strategy if options is not None else None
        # Per-connection quotas (mesh_server.quotas): refused writes store nothing.
        cid = connection.id
        self._budget.take(cid)
        allowance = self._budget.allowance(cid, record_id)
        # A ValidationError propagates as is: its pointers point into the record value (the
        # combined one for merge strategies), not into the request wrapper (``/newValue/…``).
        written = await self._write(
            record_id,
            request.newValue,
            strategy or "replace",
            allowance,
            expected_version=request.expectedVersion,
        )
        self._budget.stored(cid, record_id, written.size)
        # §11.3 step 4: answered only after the commit.
        return PublishRecordUpdateResponse.model_construct(success=True)

    # ------------------------------------------------------------------ subscription state

    def _unhold(self, record_id: str, cid: str, sub: RecordSub) -> None:
        if self._subs.get(record_id, {}).get(cid) is not sub:
            return
        sub.holds -= 1
        if sub.holds > 0 or not sub.held:
            return
        held, sub.held = sub.held, []
        connection = self._core.local_connection(cid)
        for event in held:
            frame = self._filter(record_id, cid, sub, event, RecordFrames(event))
            if frame is not None and connection is not None and not connection.closed:
                connection.send(frame)
            if self._subs.get(record_id, {}).get(cid) is not sub:
                break  # ended by a deletion

    def _forget(self, record_id: str, cid: str, sub: RecordSub) -> bool:
        """Remove ``sub`` from the local maps; returns ``False`` if it was already gone."""
        subs = self._subs.get(record_id)
        if subs is None or subs.get(cid) is not sub:
            return False
        del subs[cid]
        if not subs:
            del self._subs[record_id]
        ids = self._by_connection.get(cid)
        if ids is not None:
            ids.discard(record_id)
            if not ids:
                del self._by_connection[cid]
        self._quota.release(cid)
        return True

    async def _end(self, record_id: str, cid: str, sub: RecordSub) -> None:
        if self._forget(record_id, cid, sub) and sub.acquired:
            await self._pubsub.release(self._prefix + record_id)

    def _filter(
        self, record_id: str, cid: str, sub: RecordSub, event: dict[str, Any], frames: RecordFrames
    ) -> bytes | None:
        """Return the frame ``sub`` gets for ``event`` (None: nothing), updating its state."""
        version = event["version"]
        if event.get("t") == "deleted":
            if not deletion_applies(sub, version):
                return None
            # §11.6: the subscription ends with the deletion push.
            if self._forget(record_id, cid, sub) and sub.acquired:
                self._release_later(record_id)
            return frames.deleted()
        if version <= sub.acked:
            return None
        sub.acked = version
        return frames.update(sub.mode)

    def _release_later(self, record_id: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self._pubsub.release(self._prefix + record_id)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ Feature hooks

    def message_routes(self) -> Mapping[str, MessageRoute]:
        """Record events arrive on ``{ns}record:{id}``."""
        return {self._prefix: self._on_event}

    def _on_event(self, channel: str, data: bytes) -> None:
        subs = self._subs.get(channel[len(self._prefix) :])
        if not subs:
            return
        try:
            event = loads(data)
            version = event["version"]
            record_id = event["recordId"]
        except (ValueError, TypeError, KeyError):
            self._core.log.warning("dropping malformed record event on %r", channel)
            return
        frames = RecordFrames(event)
        deleted = event.get("t") == "deleted"
        full: list[str] = []
        patch: list[str] = []
        for cid, sub in list(subs.items()):
            if sub.holds:
                sub.held.append(event)
            elif deleted:
                if self._filter(record_id, cid, sub, event, frames) is not None:
                    full.append(cid)
            elif version > sub.acked:
                sub.acked = version
                (patch if sub.mode == "patch" else full).append(cid)
        if deleted:
            if full:
                self._core.deliver(full, frames.deleted())
            return
        if full:
            self._core.deliver(full, frames.update("full"))
        if patch:
            self._core.deliver(patch, frames.update("patch"))

    async def on_disconnect(self, connection: ConnectionLike) -> None:
        """Drop the connection's record subscriptions (§5.3 step 2) and write budget."""
        cid = connection.id
        self._budget.drop(cid)
        releases = []
        for record_id in list(self._by_connection.get(cid, ())):
            sub = self._subs[record_id][cid]
            if self._forget(record_id, cid, sub) and sub.acquired:
                releases.append(self._pubsub.release(self._prefix + record_id))
        await asyncio.gather(*releases)

    async def on_backend_recovered(self) -> None:
        """Re-subscribe, then push each record's current value as ``full`` (§11.5).

        Updates published during the outage were lost; subscribers behind the current version
        get it (a patch-mode client accepts ``full``). A record deleted meanwhile ends its
        subscriptions with ``mesh/record-deleted``.

        A lost store is not a deletion: when Redis came back empty, the server has already
        fenced (§13.5) every connection that subscribed before, before calling this, so the
        version comparison below only ever sees subscriptions made against the current store.
        Closing connections are skipped.
        """
        await self._pubsub.resync(self._pubsub.channels(self._prefix))
        for record_id in list(self._subs):
            value, version = await self._core.backend.get_record(record_id)
            subs = self._subs.get(record_id)
            if not subs:
                continue
            # A synthetic update without a patch: every mode gets it as `full`.
            update = {"t": "update", "recordId": record_id, "version": version, "value": value}
            update_frames = RecordFrames(update)
            for cid, sub in list(subs.items()):
                connection = self._core.local_connection(cid)
                if connection is None or connection.closed:
                    continue  # fenced: its state is gone and its client resubscribes
                event, frames = update, update_frames
                if (version == 0 and sub.acked > 0) or 0 < version < sub.acked:
                    # Deleted (maybe re-created) during the outage: the subscription ends.
                    event = {"t": "deleted", "recordId": record_id, "version": sub.acked}
                    frames = RecordFrames(event)
                if sub.holds:
                    sub.held.append(event)
                    continue
                frame = self._filter(record_id, cid, sub, event, frames)
                if frame is not None:
                    self._core.deliver((cid,), frame)

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Wait for pending backend releases."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
