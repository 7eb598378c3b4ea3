"""The subscription half of :class:`~mesh_sdk.client.MeshClient`.

Channels, rooms, presence, records and metadata (protocol.md §7–§12), plus routing of their pushes
and re-subscription after a reconnect (§14).

:class:`SubscriptionAPI` is a base class of ``MeshClient``; it only relies on the client's
``_call`` (send a request, await its outcome; ``on_result`` runs inline in the reader before the
next frame) and on a few attributes the client sets.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast, overload

from pydantic import BaseModel

from mesh_sdk.errors import SubscriptionDenied
from mesh_sdk.events import CallbackDispatcher, EventEmitter
from mesh_sdk.protocol.contract import read_model, read_model_json, to_jsonable, to_wire
from mesh_sdk.protocol.errors import (
    LocalValidationError,
    MeshConnectionError,
    MeshError,
    UnavailableError,
    ValidationError,
)
from mesh_sdk.protocol.generated import CONTRACT as BUILTIN_CONTRACT
from mesh_sdk.protocol.generated.models import (
    ClearPresenceStateRequest,
    GetChannelHistoryRequest,
    GetConnectionMetadataRequest,
    GetMyConnectionMetadataRequest,
    GetPresenceStateRequest,
    GetRoomMetadataRequest,
    JoinRoomRequest,
    LeaveRoomRequest,
    MetadataWriteOptions,
    PublishPresenceStateRequest,
    PublishRecordUpdateRequest,
    RecordWriteOptions,
    SetMyConnectionMetadataRequest,
    SubscribeChannelRequest,
    SubscribePresenceRequest,
    SubscribeRecordRequest,
    UnsubscribeChannelRequest,
    UnsubscribePresenceRequest,
    UnsubscribeRecordRequest,
)
from mesh_sdk.subscriptions.channels import ChannelSubscription, MessageDecoder
from mesh_sdk.subscriptions.presence import (
    PresenceSnapshot,
    PresenceState,
    PresenceSubscription,
    PresenceUpdate,
)
from mesh_sdk.subscriptions.records import (
    Outcome,
    RecordChange,
    RecordMode,
    RecordSubscription,
    ValueDecoder,
)
from mesh_sdk.subscriptions.rooms import RoomHandle

if TYPE_CHECKING:
    from mesh_sdk.protocol.contract import ContractIndex

__all__ = ["SubscriptionAPI"]

logger = logging.getLogger("mesh_sdk")

M = TypeVar("M", bound=BaseModel)

_COMMANDS: Final = {spec.request_model: spec.name for spec in BUILTIN_CONTRACT.commands.values()}

RESTORE_RETRY_FIRST_DELAY = 0.1
"""Seconds before repeating a re-subscription answered ``EUNAVAILABLE`` (doubles per attempt)."""
RESTORE_RETRY_MAX_DELAY = 2.0
"""Longest pause (seconds) between repeats of a re-subscription answered ``EUNAVAILABLE``."""


def _identity(value: Any) -> Any:
    return value


def _succeeded(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("success") is True


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _ids(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _is_current(registry: dict[str, Any], key: str, sub: Any) -> bool:
    """Whether ``sub`` is still the application's subscription for ``key``."""
    return registry.get(key) is sub


class SubscriptionAPI(ABC):
    """Channels, rooms, presence, records and metadata; mixed into ``MeshClient``."""

    # Provided by MeshClient.
    contract: ContractIndex | None
    _dispatcher: CallbackDispatcher
    _emitter: EventEmitter
    _queue_size: int
    _republish_presence_states: bool

    @abstractmethod
    async def _call(
        self,
        command: str,
        payload: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        internal: bool = False,
        on_result: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Send one request and return its result (implemented by the client)."""

    @abstractmethod
    def _spawn(self, coro: Any, name: str) -> None:
        """Run ``coro`` as a tracked background task (implemented by the client)."""

    async def _builtin(
        self,
        request: BaseModel,
        *,
        internal: bool = False,
        on_result: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Send a built-in request built from its generated model (``model_construct``).

        The command is the model's in the built-in contract; the payload is the model's members
        as given, in schema order (:func:`~mesh_sdk.protocol.contract.to_wire`): nothing is
        validated or copied here, the server validates (protocol.md §7).
        """
        payload = to_wire(request)
        command = _COMMANDS[type(request)]
        return await self._call(command, payload, internal=internal, on_result=on_result)

    @property
    def _strict_readers(self) -> bool:
        """Whether reads reject unknown members: only with a ``--strict-readers`` contract."""
        return self.contract is not None and self.contract.strict_readers

    def _init_subscriptions(self) -> None:
        self._channels: dict[str, ChannelSubscription[Any]] = {}
        self._records: dict[str, RecordSubscription[Any]] = {}
        self._presence: dict[str, PresenceSubscription] = {}
        self._rooms: dict[str, RoomHandle] = {}
        # Presence states published without expiry, re-published after a reconnect (§14 (3)).
        self._presence_states: dict[str, tuple[Any, bool]] = {}

    # ----------------------------------------------------------------------------------------
    # Metadata (§12)

    async def get_connection_metadata(self, id: str | None = None) -> Any:
        """Return a connection's metadata (``None`` if none, unknown or denied, §12.1).

        Args:
            id: The connection id (the original ``getConnectionMetadata(id)``); ``None`` reads
                this client's own metadata.
        """
        if id is None:
            result = await self._builtin(GetMyConnectionMetadataRequest.model_construct())
        else:
            result = await self._builtin(
                GetConnectionMetadataRequest.model_construct(connectionId=id)
            )
        return result.get("metadata") if isinstance(result, dict) else None

    async def get_room_metadata(self, room: str) -> Any:
        """Return a room's metadata (``None`` if none, §12.2)."""
        result = await self._builtin(GetRoomMetadataRequest.model_construct(roomName=room))
        return result.get("metadata") if isinstance(result, dict) else None

    async def set_connection_metadata(self, metadata: Any, strategy: str | None = None) -> bool:
        """Set this connection's metadata (``mesh/set-my-connection-metadata``, §12.1).

        Args:
            metadata: Any JSON value (or pydantic model).
            strategy: ``"replace"`` (default), ``"merge"`` or ``"deepMerge"``.

        Returns:
            ``True`` if stored, ``False`` if the server's guard denied it.

        Raises:
            CommandNotFoundError: Client metadata writes are disabled on the server (default).
        """
        request = SetMyConnectionMetadataRequest.model_construct(metadata=to_jsonable(metadata))
        if strategy is not None:
            request.options = MetadataWriteOptions.model_construct(strategy=_strategy(strategy))
        return _succeeded(await self._builtin(request))

    # ----------------------------------------------------------------------------------------
    # Channels (§9)

    @overload
    async def subscribe_channel(
        self,
        channel: str,
        on_message: Callable[[M], Any] | None = None,
        *,
        history_limit: int = 0,
        model: type[M],
        strict_reader: bool | None = None,
    ) -> ChannelSubscription[M]: ...

    @overload
    async def subscribe_channel(
        self,
        channel: str,
        on_message: Callable[[Any], Any] | None = None,
        *,
        history_limit: int = 0,
        model: None = None,
        strict_reader: bool | None = None,
    ) -> ChannelSubscription[Any]: ...

    async def subscribe_channel(
        self,
        channel: str,
        on_message: Callable[[Any], Any] | None = None,
        *,
        history_limit: int = 0,
        model: type[BaseModel] | None = None,
        strict_reader: bool | None = None,
    ) -> ChannelSubscription[Any]:
        """Subscribe to a channel (``mesh/subscribe-channel``, §9.3).

        Subscribing again to the same channel replaces the local subscription (the old object
        ends) and returns history again.

        Args:
            channel: The channel name.
            on_message: Optional callback (sync or async) for live messages.
            history_limit: How many past messages to return in :attr:`~ChannelSubscription.history`
                (newest first).
            model: A pydantic model to decode messages with (``model_validate_json``);
                otherwise the contract's channel schema, otherwise raw strings.
            strict_reader: Reject messages with unknown members; by default (``None``) only
                with a ``--strict-readers`` contract, otherwise unknown members are ignored
                (tolerant reader, contract/README.md "Evolving a contract").

        Raises:
            SubscriptionDenied: The server answered ``success: false``.
            MeshError: Any error response (e.g. ``TooLargeError``).
        """
        sub: ChannelSubscription[Any] = ChannelSubscription(
            self,
            channel,
            self._channel_decoder(channel, model, strict_reader),
            self._dispatcher,
            queue_size=self._queue_size,
        )
        if on_message is not None:
            sub.on_message(on_message)
        self._register(self._channels, channel, sub)
        request = SubscribeChannelRequest.model_construct(channel=channel)
        if history_limit:
            request.historyLimit = history_limit
        try:
            await self._builtin(request, on_result=partial(self._channel_answer, sub, True))
        except BaseException:
            self._unregister(self._channels, channel, sub)
            raise
        return sub

    def _channel_decoder(
        self, channel: str, model: type[BaseModel] | None, strict: bool | None
    ) -> MessageDecoder[Any]:
        strict = self._strict_readers if strict is None else strict
        if model is not None:
            return partial(read_model_json, model, strict=strict)
        spec = self.contract.channel_for(channel) if self.contract is not None else None
        if spec is not None:
            return partial(spec.decode_message, strict=strict)
        return _identity

    def _channel_answer(self, sub: ChannelSubscription[Any], history: bool, payload: Any) -> Any:
        if not _succeeded(payload):
            raise SubscriptionDenied(target=sub.channel)
        if history:
            sub._set_history(payload.get("history"))
        sub._confirmed = True
        return payload

    async def unsubscribe_channel(self, channel: str) -> bool:
        """Unsubscribe from a channel; returns whether this connection was subscribed (§9.4)."""
        sub = self._channels.pop(channel, None)
        if sub is not None:
            sub._end()
        request = UnsubscribeChannelRequest.model_construct(channel=channel)
        return await self._builtin(request) is True

    async def get_channel_history(self, channel: str, limit: int = 50) -> list[str]:
        """Return up to ``limit`` past messages of ``channel``, newest first (§9.5).

        Raises:
            SubscriptionDenied: The channel is not readable by this connection.
        """
        request = GetChannelHistoryRequest.model_construct(channel=channel, limit=limit)
        result = await self._builtin(request)
        if not _succeeded(result):
            raise SubscriptionDenied(target=channel)
        history = result.get("history")
        return [m for m in history if isinstance(m, str)] if isinstance(history, list) else []

    # ----------------------------------------------------------------------------------------
    # Rooms (§10.1, §10.2)

    async def join_room(
        self, room: str, on_presence: Callable[[PresenceUpdate], Any] | None = None
    ) -> RoomHandle:
        """Join a room (``mesh/join-room``); it is re-joined after reconnects.

        Args:
            room: The room name.
            on_presence: If given, also subscribe to the room's presence with this callback;
                the subscription is :attr:`RoomHandle.presence` and ends on leave.

        Raises:
            MeshError: The join was refused (e.g. ``ForbiddenError`` from middleware).
        """
        handle = self._rooms.get(room) or RoomHandle(self, room, [])
        await self._builtin(
            JoinRoomRequest.model_construct(roomName=room),
            on_result=partial(self._room_answer, handle),
        )
        if on_presence is not None:
            handle.presence = await self.subscribe_presence(room, on_update=on_presence)
        return handle

    def _room_answer(self, handle: RoomHandle, payload: Any) -> Any:
        if not _succeeded(payload):
            raise SubscriptionDenied(target=handle.room)
        handle.present = _ids(payload.get("present"))
        handle.joined = True
        self._rooms[handle.room] = handle
        return payload

    async def leave_room(self, room: str) -> bool:
        """Leave a room (``mesh/leave-room``), ending the presence subscription of its handle."""
        handle = self._rooms.pop(room, None)
        if handle is not None:
            handle.joined = False
        self._presence_states.pop(room, None)
        result = await self._builtin(LeaveRoomRequest.model_construct(roomName=room))
        presence = handle.presence if handle is not None else None
        if presence is not None and self._presence.get(room) is presence:
            await self.unsubscribe_presence(room)
        return _succeeded(result)

    # ----------------------------------------------------------------------------------------
    # Presence (§10.3–§10.5)

    async def subscribe_presence(
        self, room: str, on_update: Callable[[PresenceUpdate], Any] | None = None
    ) -> PresenceSubscription:
        """Subscribe to a room's presence (``mesh/subscribe-presence``, §10.4).

        Raises:
            SubscriptionDenied: Not tracked for this connection (``success: false``).
        """
        sub = PresenceSubscription(self, room, self._dispatcher, queue_size=self._queue_size)
        if on_update is not None:
            sub.on_update(on_update)
        self._register(self._presence, room, sub)
        try:
            await self._builtin(
                SubscribePresenceRequest.model_construct(roomName=room),
                on_result=partial(self._presence_answer, sub, False),
            )
        except BaseException:
            self._unregister(self._presence, room, sub)
            raise
        return sub

    def _presence_answer(self, sub: PresenceSubscription, notify: bool, payload: Any) -> Any:
        if not _succeeded(payload):
            raise SubscriptionDenied(target=sub.room)
        sub._reset(payload.get("present"), payload.get("states"), notify=notify)
        sub._confirmed = True
        return payload

    async def unsubscribe_presence(self, room: str) -> bool:
        """Unsubscribe from a room's presence; returns whether this connection was subscribed."""
        sub = self._presence.pop(room, None)
        if sub is not None:
            sub._end()
        request = UnsubscribePresenceRequest.model_construct(roomName=room)
        return await self._builtin(request) is True

    async def publish_presence_state(
        self, room: str, state: Any, expire_after: float | None = None, silent: bool = False
    ) -> bool:
        """Publish this connection's presence state in ``room`` (§10.5).

        States published without ``expire_after`` are published again after a reconnect.

        Args:
            room: A tracked room this connection is present in.
            state: Any non-null JSON value (or pydantic model).
            expire_after: Seconds after which the server clears it (``None``/0: never); sent as
                whole milliseconds (``expireAfter``), at least 1 ms.
            silent: Store without publishing a ``state`` event.

        Returns:
            ``False`` if the room is not tracked, the guard denied, or this connection is not
            present there.

        Raises:
            ValueError: ``expire_after`` is negative.
        """
        if expire_after is not None and not expire_after >= 0:
            raise ValueError(f"expire_after must be seconds >= 0, not {expire_after!r}")
        value = to_jsonable(state)
        # §10.5: the wire carries integer milliseconds; never round an expiry down to "none".
        expire_ms = max(1, round(expire_after * 1000)) if expire_after else None
        result = await self._builtin(_presence_state(room, value, expire_ms, silent))
        if result is True and not expire_after:
            self._presence_states[room] = (value, silent)
        else:
            self._presence_states.pop(room, None)
        return result is True

    async def clear_presence_state(self, room: str) -> bool:
        """Clear this connection's presence state in ``room`` (§10.5)."""
        self._presence_states.pop(room, None)
        request = ClearPresenceStateRequest.model_construct(roomName=room)
        return await self._builtin(request) is True

    async def get_presence_state(self, room: str) -> PresenceSnapshot:
        """Read who is present in ``room`` and their states without subscribing.

        Raises:
            SubscriptionDenied: Not tracked for this connection.
        """
        result = await self._builtin(GetPresenceStateRequest.model_construct(roomName=room))
        if not _succeeded(result):
            raise SubscriptionDenied(target=room)
        state = PresenceState(_ids(result.get("present")), None)
        state.reset(state.present, result.get("states"))
        return PresenceSnapshot(frozenset(state.present), state.states)

    # ----------------------------------------------------------------------------------------
    # Records (§11)

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
        strict = self._strict_readers if strict is None else strict
        if model is not None:
            return partial(read_model, model, strict=strict)
        spec = self.contract.record_for(record_id) if self.contract is not None else None
        if spec is not None:
            return partial(spec.read_value, strict=strict)
        return _identity

    def _record_answer(self, sub: RecordSubscription[Any], payload: Any) -> Any:
        if self._records.get(sub.record_id) is not sub:
            return payload  # replaced or unsubscribed meanwhile
        if not _succeeded(payload):
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
            request.options = RecordWriteOptions.model_construct(strategy=_strategy(strategy))
        if expected_version is not None:
            request.expectedVersion = expected_version
        return _succeeded(await self._builtin(request))

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

    # ----------------------------------------------------------------------------------------
    # Push routing (§8)

    def _route_mesh_push(self, command: str, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        key = payload.get("recordId") if command.startswith("mesh/record-") else None
        if command == "mesh/subscription-message":
            channel = self._channels.get(_text(payload.get("channel")))
            if channel is not None:
                channel._deliver(payload.get("message"))
        elif command == "mesh/record-update":
            record = self._records.get(_text(key))
            if record is not None and record._apply_push(payload) is Outcome.GAP:
                self._spawn(self._resync(record), "mesh-sdk-resync")
        elif command == "mesh/record-deleted":
            record = self._records.pop(_text(key), None)
            if record is not None:
                version = payload.get("version")
                record._deleted(version if type(version) is int else record.version)
        elif command == "mesh/presence-update":
            presence = self._presence.get(_text(payload.get("roomName")))
            if presence is not None:
                presence._apply(payload)

    # ----------------------------------------------------------------------------------------
    # Re-subscription after a reconnect (§14)

    async def _restore_subscriptions(self) -> None:
        """Re-join rooms; re-subscribe presence, channels, records; re-publish states.

        Raises:
            MeshConnectionError: The socket dropped meanwhile (the next connection retries).
        """
        await self._restore_all(
            self._restore_one(
                JoinRoomRequest.model_construct(roomName=room),
                partial(self._room_answer, handle),
                partial(self._drop_room, handle),
                partial(_is_current, self._rooms, room, handle),
            )
            for room, handle in list(self._rooms.items())
        )
        steps: list[Awaitable[None]] = []
        for room, presence in list(self._presence.items()):
            if presence._confirmed:
                steps.append(
                    self._restore_one(
                        SubscribePresenceRequest.model_construct(roomName=room),
                        partial(self._presence_answer, presence, True),
                        partial(self._drop, self._presence, room, presence),
                        partial(_is_current, self._presence, room, presence),
                    )
                )
        for name, channel in list(self._channels.items()):
            if channel._confirmed:
                # Without historyLimit: nothing is replayed (§14 (2)).
                steps.append(
                    self._restore_one(
                        SubscribeChannelRequest.model_construct(channel=name),
                        partial(self._channel_answer, channel, False),
                        partial(self._drop, self._channels, name, channel),
                        partial(_is_current, self._channels, name, channel),
                    )
                )
        for record_id, record in list(self._records.items()):
            if record._confirmed:
                steps.append(
                    self._restore_one(
                        SubscribeRecordRequest.model_construct(
                            recordId=record_id, mode=record.mode
                        ),
                        partial(self._record_answer, record),
                        partial(self._drop, self._records, record_id, record),
                        partial(_is_current, self._records, record_id, record),
                    )
                )
        await self._restore_all(steps)
        if self._republish_presence_states:
            await self._restore_all(
                self._restore_one(
                    _presence_state(room, state, None, silent),
                    partial(self._state_republished, room),
                    self._report,
                )
                for room, (state, silent) in list(self._presence_states.items())
            )

    def _state_republished(self, room: str, result: Any) -> Any:
        if result is not True:
            self._presence_states.pop(room, None)
        return result

    async def _restore_all(self, steps: Iterable[Awaitable[None]]) -> None:
        results = await asyncio.gather(*steps, return_exceptions=True)
        for result in results:
            if isinstance(result, MeshConnectionError | asyncio.CancelledError):
                raise result

    async def _restore_one(
        self,
        request: BaseModel,
        on_result: Callable[[Any], Any] | None,
        drop: Callable[[SubscriptionDenied], Any],
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        try:
            await self._builtin(request, internal=True, on_result=on_result)
        except MeshConnectionError:
            raise
        except SubscriptionDenied as exc:
            drop(exc)
        except UnavailableError as exc:
            self._report(exc)
            if wanted is not None:
                # The server is up but its backend is not (yet): the subscription is kept and
                # asked for again, in the background so queued commands are not held up.
                retry = self._retry_restore(request, on_result, drop, wanted)
                self._spawn(retry, "mesh-sdk-restore-retry")
        except MeshError as exc:
            self._report(exc)
        except Exception:
            logger.exception("restoring %s failed", _COMMANDS[type(request)])

    async def _retry_restore(
        self,
        request: BaseModel,
        on_result: Callable[[Any], Any] | None,
        drop: Callable[[SubscriptionDenied], Any],
        wanted: Callable[[], bool],
    ) -> None:
        """Repeat one restore step after ``EUNAVAILABLE`` with backoff until it is answered.

        Ends when the step succeeds or is denied, when the application dropped the subscription,
        or when the socket closes (the next connection restores everything anyway).
        """
        delay = RESTORE_RETRY_FIRST_DELAY
        while True:
            await asyncio.sleep(delay)  # backoff between attempts, not synchronisation
            if not wanted():
                return
            try:
                await self._builtin(request, internal=True, on_result=on_result)
            except MeshConnectionError:
                return
            except SubscriptionDenied as exc:
                drop(exc)
                return
            except UnavailableError:
                delay = min(delay * 2, RESTORE_RETRY_MAX_DELAY)
                continue
            except MeshError as exc:
                self._report(exc)
            return

    def _drop(self, registry: dict[str, Any], key: str, sub: Any, error: MeshError) -> None:
        if key in registry and registry[key] is sub:
            del registry[key]
            sub._end()
        self._report(error)

    def _drop_room(self, handle: RoomHandle, error: MeshError) -> None:
        if self._rooms.get(handle.room) is handle:
            del self._rooms[handle.room]
            handle.joined = False
        self._report(error)

    def _report(self, error: MeshError) -> None:
        logger.warning("background subscription request failed: %s", error)
        self._emitter.emit("error", error)

    # ----------------------------------------------------------------------------------------
    # Registry helpers

    @staticmethod
    def _register(registry: dict[str, Any], key: str, sub: Any) -> None:
        old: Any = registry.get(key)
        registry[key] = sub
        if old is not None and old is not sub:
            old._end()

    @staticmethod
    def _unregister(registry: dict[str, Any], key: str, sub: Any) -> None:
        if registry.get(key) is sub:
            del registry[key]
        sub._end()

    def _end_subscriptions(self) -> None:
        for registry in (self._channels, self._records, self._presence):
            for sub in registry.values():
                sub._end()
            registry.clear()
        for handle in self._rooms.values():
            handle.joined = False
        self._rooms.clear()
        self._presence_states.clear()


def _strategy(strategy: str) -> Literal["replace", "merge", "deepMerge"]:
    """A write strategy as given: an unknown one is the server's to reject (``EVALIDATION``)."""
    return cast('Literal["replace", "merge", "deepMerge"]', strategy)


def _presence_state(
    room: str, state: Any, expire_after_ms: int | None, silent: bool
) -> PublishPresenceStateRequest:
    """The ``mesh/publish-presence-state`` request; ``expireAfter`` and ``silent`` only when set."""
    request = PublishPresenceStateRequest.model_construct(roomName=room, state=state)
    if expire_after_ms:
        request.expireAfter = expire_after_ms
    if silent:
        request.silent = True
    return request
