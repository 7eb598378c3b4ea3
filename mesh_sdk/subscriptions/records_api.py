"""The record half of :class:`~mesh_sdk.client.MeshClient` (protocol.md §11).

Subscribing (full or patch mode), writing, and resyncing after a version gap (§11.5); the
:class:`RecordSubscription` objects it returns are in :mod:`mesh_sdk.subscriptions.records`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from mesh_sdk.errors import SubscriptionDenied
from mesh_sdk.protocol.contract import read_model, to_jsonable
from mesh_sdk.protocol.errors import (
    LocalValidationError,
    MeshConnectionError,
    MeshError,
    ValidationError,
)
from mesh_sdk.protocol.generated.models import (
    PublishRecordUpdateRequest,
    RecordWriteOptions,
    SubscribeRecordRequest,
    UnsubscribeRecordRequest,
)
from mesh_sdk.subscriptions.core import SubscriptionCore, identity, succeeded, write_strategy
from mesh_sdk.subscriptions.records import (
    RecordChange,
    RecordMode,
    RecordSubscription,
    ValueDecoder,
)

__all__ = ["RecordsAPI"]

M = TypeVar("M", bound=BaseModel)


class RecordsAPI(SubscriptionCore):
    """Record subscriptions, writes and resyncs; mixed into ``MeshClient``."""

    _records: dict[str, RecordSubscription[Any]]

    @overload
    async def subscribe_record(
        self,
        record_id: str,
        *,
        mode: RecordMode = "full",
        model: type[M],
        on_change: Callable[[RecordChange[M]], Any] | None = None,
        strict_reader: bool | None = None,
    ) -> RecordSubscription[M]: ...

    @overload
    async def subscribe_record(
        self,
        record_id: str,
        *,
        mode: RecordMode = "full",
        model: None = None,
        on_change: Callable[[RecordChange[Any]], Any] | None = None,
        strict_reader: bool | None = None,
    ) -> RecordSubscription[Any]: ...

    async def subscribe_record(
        self,
        record_id: str,
        *,
        mode: RecordMode = "full",
        model: type[BaseModel] | None = None,
        on_change: Callable[[RecordChange[Any]], Any] | None = None,
        strict_reader: bool | None = None,
    ) -> RecordSubscription[Any]:
        """Subscribe to a record (``mesh/subscribe-record``, §11.5).

        Every consumer starts from the state the subscription holds, then sees each later
        change once (the rule is in :class:`RecordSubscription`): ``on_change`` receives the
        initial snapshot as a full :class:`RecordChange` before this returns, and a
        :meth:`~RecordSubscription.changes` iterator (or ``async for``) created afterwards
        yields the current state first. In patch mode, patches are applied locally with version
        checks; a gap triggers a resync (unsubscribe + subscribe, same mode) whose answer is
        delivered as a full change. After a reconnect the subscription is renewed the same
        way; an answer at the version and value already held is not delivered again.

        Args:
            record_id: The record.
            mode: ``"full"`` (default) or ``"patch"``.
            model: A pydantic model to decode values with (``model_validate``); otherwise the
                contract's record schema, otherwise plain JSON.
            on_change: Optional callback (sync or async) receiving each :class:`RecordChange`.
            strict_reader: Reject values with unknown members; by default (``None``) only with a
                ``--strict-readers`` contract, otherwise unknown members are dropped from the
                decoded value (``RecordChange.raw`` keeps them). Writes are always validated in
                full.

        Raises:
            SubscriptionDenied: The record is not readable (``success: false``).
            ValueError: Unknown mode.
        """
        if mode not in ("full", "patch"):
            raise ValueError(f"record mode must be 'full' or 'patch', not {mode!r}")
        sub: RecordSubscription[Any] = RecordSubscription(
            self,
            record_id,
            mode,
            self._record_decoder(record_id, model, strict_reader),
            self._dispatcher,
            queue_size=self._queue_size,
        )
        if on_change is not None:
            sub.on_change(on_change)
        self._register(self._records, record_id, sub)
        try:
            await self._builtin(
                SubscribeRecordRequest.model_construct(recordId=record_id, mode=mode),
                on_result=partial(self._record_answer, sub),
            )
        except BaseException:
            self._unregister(self._records, record_id, sub)
            raise
        return sub

    def _record_decoder(
        self, record_id: str, model: type[BaseModel] | None, strict: bool | None
    ) -> ValueDecoder[Any]:
        # As for channels: only the contract's model reports violations.
        strict = self._strict_readers if strict is None else strict
        spec = self.contract.record_for(record_id) if self.contract is not None else None
        if spec is not None and model in (None, spec.model):
            return partial(spec.read_value, strict=strict)
        if model is not None:
            return partial(read_model, model, strict=strict)
        return identity

    def _record_answer(self, sub: RecordSubscription[Any], payload: Any) -> Any:
        if self._records.get(sub.record_id) is not sub:
            return payload  # replaced or unsubscribed meanwhile
        if not succeeded(payload):
            raise SubscriptionDenied(target=sub.record_id)
        version = payload.get("version")
        sub._apply_snapshot(payload.get("record"), version if type(version) is int else 0)
        sub._confirmed = True
        return payload

    async def unsubscribe_record(self, record_id: str) -> bool:
        """Unsubscribe from a record; returns whether this connection was subscribed."""
        sub = self._records.pop(record_id, None)
        if sub is not None:
            sub._end()
        request = UnsubscribeRecordRequest.model_construct(recordId=record_id)
        return await self._builtin(request) is True

    async def publish_record_update(
        self,
        record_id: str,
        value: Any,
        strategy: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> bool:
        """Write a record (``mesh/publish-record-update``, §11.3).

        With a contract that declares the record, a ``replace`` write is validated against its
        schema first (partial ``merge``/``deepMerge`` values are not).

        Args:
            record_id: The record.
            value: The new value (a pydantic model or JSON value).
            strategy: ``"replace"`` (the server's default), ``"merge"`` or ``"deepMerge"``.
            expected_version: Write only if the record is still at this version (0: absent),
                e.g. the :attr:`~mesh_sdk.subscriptions.RecordSubscription.version` the
                client last saw; ``None`` writes unconditionally (``expectedVersion`` is not
                sent).

        Returns:
            ``True`` once committed (also when the value did not change).

        Raises:
            ConflictError: The record is at another version (``ECONFLICT``;
                :attr:`~mesh_sdk.protocol.errors.ConflictError.actual` says which); nothing
                was stored.
            ForbiddenError: Not writable by this connection.
            ValidationError: The value violates the schema: a
                :class:`~mesh_sdk.protocol.errors.LocalValidationError` when refused before
                sending, else the server's rejection.
            TooLargeError: The value exceeds the server's record size limit.
        """
        if expected_version is not None and (
            type(expected_version) is not int or expected_version < 0
        ):
            raise ValueError(f"expected_version must be an int >= 0, not {expected_version!r}")
        spec = self.contract.record_for(record_id) if self.contract is not None else None
        wire_value = to_jsonable(value)
        if spec is not None and strategy in (None, "replace"):
            try:
                spec.validate_value(wire_value)
            except ValidationError as exc:
                raise LocalValidationError.refused(exc) from None
        request = PublishRecordUpdateRequest.model_construct(
            recordId=record_id, newValue=wire_value
        )
        if strategy is not None:
            request.options = RecordWriteOptions.model_construct(strategy=write_strategy(strategy))
        if expected_version is not None:
            request.expectedVersion = expected_version
        return succeeded(await self._builtin(request))

    async def _resync(self, sub: RecordSubscription[Any]) -> None:
        """§11.5: on a version gap, unsubscribe and subscribe again in the same mode."""
        record_id = sub.record_id
        try:
            unsubscribe = UnsubscribeRecordRequest.model_construct(recordId=record_id)
            await self._builtin(unsubscribe, internal=True)
            if self._records.get(record_id) is not sub:
                return
            await self._builtin(
                SubscribeRecordRequest.model_construct(recordId=record_id, mode=sub.mode),
                internal=True,
                on_result=partial(self._record_answer, sub),
            )
        except MeshConnectionError:
            return  # the subscription is renewed after the reconnect
        except SubscriptionDenied as exc:
            self._drop(self._records, record_id, sub, exc)
        except MeshError as exc:
            self._report(exc)
