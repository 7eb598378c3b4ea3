"""Record subscriptions (protocol.md §11): full and patch mode, version checks, resync, deletion.

:class:`RecordState` is the sans-I/O core: it applies subscribe responses and
``mesh/record-update`` pushes to a local JSON copy and says when a resync is needed.
:class:`RecordSubscription` wraps it with typing, callbacks and iteration; the client performs
the resync (``mesh/unsubscribe-record`` + ``mesh/subscribe-record``, same mode, §11.5).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from mesh_sdk.events import Callback, CallbackDispatcher
from mesh_sdk.protocol.errors import ContractViolationError, ValidationError
from mesh_sdk.protocol.patch import apply_patch
from mesh_sdk.subscriptions.base import (
    DEFAULT_QUEUE_SIZE,
    AsyncContextSubscription,
    Fanout,
    SubscriptionIterator,
    ViolationReporter,
)

__all__ = [
    "Outcome",
    "RecordChange",
    "RecordMode",
    "RecordOwner",
    "RecordState",
    "RecordSubscription",
    "ValueDecoder",
]

logger = logging.getLogger("mesh_sdk")

T = TypeVar("T")

RecordMode = Literal["full", "patch"]
ValueDecoder = Callable[[Any], T]
"""Turns a record's JSON value (never ``None``) into the subscription's type."""


class Outcome(enum.Enum):
    """What :meth:`RecordState.apply_push` did with a push."""

    APPLIED = "applied"
    """The local copy changed to the pushed version."""
    STALE = "stale"
    """Version ≤ local: ignored (§11.5)."""
    GAP = "gap"
    """A patch that does not follow the local version (or does not apply): resync now."""
    DROPPED = "dropped"
    """A patch received while a resync is under way, or a push without a usable body."""
    INVALID = "invalid"
    """The pushed or patched value does not decode: not taken (:class:`RecordSubscription`)."""


class RecordState:
    """Local copy of one record: JSON value, version and resync flag (sans-I/O).

    Attributes:
        value: The JSON value (``None`` when absent).
        version: The version of :attr:`value` (0 = absent, §11.2).
        resyncing: A resync was requested and its response has not arrived yet.
    """

    def __init__(self, value: Any = None, version: int = 0) -> None:
        self.value = value
        self.version = version
        self.resyncing = False

    def reset(self, value: Any, version: int) -> None:
        """Take a subscribe response as the full state (§11.5), ending any resync."""
        self.value = value
        self.version = version
        self.resyncing = False

    def apply_push(self, payload: Any) -> tuple[Outcome, list[dict[str, Any]] | None]:
        """Apply one ``mesh/record-update`` payload.

        Full pushes replace the value when newer (JS clients accept ``full`` in patch mode
        too). Patches apply only to ``version == local + 1``; anything further ahead, or a patch
        that fails to apply, is a gap: the caller must resync and later call :meth:`reset`.

        Returns:
            The outcome and, for an applied patch, its operations.
        """
        if not isinstance(payload, dict):
            return Outcome.DROPPED, None
        version = payload.get("version")
        if type(version) is not int:
            return Outcome.DROPPED, None
        if version <= self.version:
            return Outcome.STALE, None
        if "full" in payload:
            self.reset(payload["full"], version)
            return Outcome.APPLIED, None
        patch = payload.get("patch")
        if not isinstance(patch, list):
            return Outcome.DROPPED, None
        if self.resyncing:
            return Outcome.DROPPED, None
        if version != self.version + 1:
            self.resyncing = True
            return Outcome.GAP, None
        try:
            value = apply_patch(self.value, patch)
        except ValueError:
            self.resyncing = True
            return Outcome.GAP, None
        self.value = value
        self.version = version
        return Outcome.APPLIED, patch


@dataclass(frozen=True, slots=True)
class RecordChange(Generic[T]):
    """One change of a subscribed record, as callbacks and iterators see it.

    Attributes:
        record_id: The record.
        value: The decoded value (``None`` when the record is absent).
        version: Its version.
        patch: The RFC 6902 operations that produced it (patch mode), or ``None`` for a full
            update: the subscribe response, a full-mode push, a resync or a re-subscription.
        raw: The JSON value before decoding.
    """

    record_id: str
    value: T | None
    version: int
    patch: list[dict[str, Any]] | None
    raw: Any

    @property
    def full(self) -> bool:
        """Whether this change carries the whole state rather than a patch."""
        return self.patch is None


class RecordOwner(ViolationReporter, Protocol):
    """What a :class:`RecordSubscription` asks of its client (the record half of the client)."""

    async def unsubscribe_record(self, record_id: str) -> bool:
        """Send ``mesh/unsubscribe-record`` and drop the local subscription."""
        ...

    async def publish_record_update(
        self,
        record_id: str,
        value: Any,
        strategy: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> bool:
        """Send ``mesh/publish-record-update``."""
        ...


class RecordSubscription(AsyncContextSubscription, Generic[T]):
    """A live subscription to one record (§11.5).

    ``value`` is decoded with the ``model`` given to
    :meth:`~mesh_sdk.client.MeshClient.subscribe_record` (``model.model_validate``), else the
    contract's record schema, else kept as JSON. Unknown members are dropped from ``value``
    unless the subscription reads strictly (:attr:`raw` keeps them).

    **A value that fails to decode is never taken** (a subscribe response, a full push, or the
    result of applying a patch): it is logged and counted in :attr:`decode_errors`, nothing is
    delivered, and :attr:`value`, :attr:`raw` and :attr:`version` keep the last valid state.
    When it fails the contract's schema (not a ``model`` of the caller's own), the server broke
    the contract: the client's ``"error"`` listeners also receive a
    :class:`~mesh_sdk.protocol.errors.ContractViolationError` (``target`` = the record id,
    ``version`` = the rejected version, ``details`` = the problems). The subscription stays
    active and recovers by itself: in full mode the next valid full push is taken; in patch mode
    the next patch does not follow the held version, which is a gap, so the client resyncs
    (§11.5) and takes the snapshot if it is valid (an invalid snapshot is reported and the next
    patch resyncs again).

    Callbacks registered with :meth:`on_change` (sync or async) receive one :class:`RecordChange`
    per change, in version order; ``async for value in subscription`` yields values and
    :meth:`changes` yields :class:`RecordChange` objects. When the record is deleted
    (``mesh/record-deleted``), :meth:`on_delete` callbacks get ``(record_id, version)`` and
    iteration ends.

    **Which changes a consumer sees** (the same rule for every kind of consumer: an
    ``on_change`` callback given to ``subscribe_record``, one added later with
    :meth:`on_change`, a :meth:`changes` iterator and ``async for``):

    1. It starts from the state the subscription holds, as a full change: a callback given to
       ``subscribe_record`` receives the initial snapshot (the subscribe response, version 0
       with value ``None`` when the record is absent); a callback added or an iterator created
       later receives the current state first. ``N`` writes after subscribing are therefore
       ``N + 1`` changes for every consumer created right after subscribing.
    2. Then every later change once, in version order.
    3. A snapshot that brings nothing new is not delivered: after a reconnect (§14) or a
       resync (§11.5), the subscribe response at the version and value the subscription
       already holds is taken silently, so no consumer sees the same version twice. A server
       that lost its records (a restarted memory backend) numbers versions anew; its answer
       differs from the held state and is delivered as a full change.

    Attributes:
        record_id: The record.
        mode: ``"full"`` or ``"patch"``.
        decode_errors: Values that failed to decode.
    """

    def __init__(
        self,
        owner: RecordOwner,
        record_id: str,
        mode: RecordMode,
        decode: ValueDecoder[T],
        dispatcher: CallbackDispatcher,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.record_id = record_id
        self.mode: RecordMode = mode
        self.decode_errors = 0
        self.deleted = False
        self._confirmed = False
        self._owner = owner
        self._decode = decode
        self._state = RecordState()
        self._value: T | None = None
        self._snapshot_taken = False
        self._changes: Fanout[RecordChange[T]] = Fanout(dispatcher, queue_size, replay=True)
        self._values: Fanout[T | None] = Fanout(dispatcher, queue_size, replay=True)
        self._on_delete: list[Callback] = []

    def __repr__(self) -> str:
        state = "ended" if self.ended else "active"
        return f"<RecordSubscription {self.record_id!r} {self.mode} v{self.version} {state}>"

    # ----------------------------------------------------------------------------------------
    # Public API

    @property
    def value(self) -> T | None:
        """The current value, decoded (``None`` while the record is absent)."""
        return self._value

    @property
    def raw(self) -> Any:
        """The current value as JSON."""
        return self._state.value

    @property
    def version(self) -> int:
        """The current version (0 = absent)."""
        return self._state.version

    @property
    def ended(self) -> bool:
        """Whether the subscription is over (unsubscribed, deleted, denied, client closed)."""
        return self._changes.ended

    @property
    def resyncing(self) -> bool:
        """Whether a version gap was detected and the resync response is still awaited."""
        return self._state.resyncing

    def on_change(self, callback: Callable[[RecordChange[T]], Any]) -> Callable[[], None]:
        """Call ``callback(change)`` for the current state, then every change (sync or async).

        Returns:
            A function removing the callback.
        """
        return self._changes.add_callback(callback)

    def on_delete(self, callback: Callable[[str, int], Any]) -> Callable[[], None]:
        """Call ``callback(record_id, last_version)`` when the record is deleted (§11.6)."""
        self._on_delete.append(callback)

        def remove() -> None:
            if callback in self._on_delete:
                self._on_delete.remove(callback)

        return remove

    def __aiter__(self) -> SubscriptionIterator[T | None]:
        return self._values.iterator()

    def changes(self) -> SubscriptionIterator[RecordChange[T]]:
        """Return a new async iterator over :class:`RecordChange` objects.

        It yields the current state first (a full change), then every later change.
        """
        return self._changes.iterator()

    async def update(
        self, value: Any, strategy: str = "replace", *, expected_version: int | None = None
    ) -> bool:
        """Write the record (``mesh/publish-record-update``, §11.3).

        ``update(value, expected_version=sub.version)`` writes only if nobody wrote the record
        since the version this subscription holds: a compare-and-set. On ``ConflictError`` the
        subscription receives the newer version as usual; compute again from it and retry.

        Args:
            value: The new value (a pydantic model or JSON value).
            strategy: ``"replace"``, ``"merge"`` or ``"deepMerge"``.
            expected_version: Write only if the record is at this version (0: absent);
                ``None`` writes unconditionally.

        Returns:
            ``True`` once the write committed (also when nothing changed).

        Raises:
            ConflictError: The record is at another version (``ECONFLICT``); nothing stored.
            ForbiddenError: The record is not writable by this connection.
            ValidationError: The value violates the contract's record schema.
        """
        return await self._owner.publish_record_update(
            self.record_id, value, strategy, expected_version=expected_version
        )

    async def unsubscribe(self) -> bool:
        """Unsubscribe (``mesh/unsubscribe-record``) and end iteration."""
        if self.ended:
            return False
        return await self._owner.unsubscribe_record(self.record_id)

    # ----------------------------------------------------------------------------------------
    # Driven by the client

    def _apply_snapshot(self, value: Any, version: int) -> None:
        """Take a subscribe response (first, resync or re-subscription) as a full update.

        A later snapshot equal to the held state (same version and value) changes nothing and
        is not delivered again (rule 3 of the class docstring).
        """
        state = self._state
        unchanged = self._snapshot_taken and (state.version, state.value) == (version, value)
        held = (state.value, state.version)
        state.reset(value, version)
        if unchanged:
            return
        if self._emit(None):
            self._snapshot_taken = True
        else:
            # Not resyncing any more: the next patch is a gap and asks for a snapshot again.
            state.value, state.version = held

    def _apply_push(self, payload: Any) -> Outcome:
        state = self._state
        held = (state.value, state.version, state.resyncing)
        outcome, patch = state.apply_push(payload)
        if outcome is Outcome.APPLIED and not self._emit(patch):
            state.value, state.version, state.resyncing = held
            return Outcome.INVALID
        return outcome

    def _deleted(self, version: int) -> None:
        self.deleted = True
        self._changes.call(self._on_delete, self.record_id, version)
        self._end()

    def _end(self) -> None:
        self._changes.end()
        self._values.end()

    def _emit(self, patch: list[dict[str, Any]] | None) -> bool:
        """Decode the state's value and deliver it; ``False`` if it does not decode (reported)."""
        raw = self._state.value
        try:
            value = None if raw is None else self._decode(raw)
        except ValidationError as exc:  # only the contract's decoder raises the Mesh error
            self.decode_errors += 1
            violation = ContractViolationError.broke(
                exc, target=self.record_id, version=self.version
            )
            self._owner._report_violation(violation)
            return False
        except Exception as exc:
            self.decode_errors += 1
            logger.warning("record %r v%d does not decode: %s", self.record_id, self.version, exc)
            return False
        self._value = value
        change = RecordChange(self.record_id, value, self.version, patch, raw)
        self._changes.publish(change)
        self._values.publish(value)
        return True
