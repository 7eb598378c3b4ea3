"""The presence half of :class:`~mesh_sdk.client.MeshClient` (protocol.md §10.3–§10.5).

Presence subscriptions, reads, and this connection's own presence state (kept for re-publication
after a reconnect, §14 (3)); the :class:`PresenceSubscription` objects it returns are in
:mod:`mesh_sdk.subscriptions.presence`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from mesh_sdk.errors import SubscriptionDenied
from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.generated.models import (
    ClearPresenceStateRequest,
    GetPresenceStateRequest,
    PublishPresenceStateRequest,
    SubscribePresenceRequest,
    UnsubscribePresenceRequest,
)
from mesh_sdk.subscriptions.core import SubscriptionCore, string_ids, succeeded
from mesh_sdk.subscriptions.presence import (
    PresenceSnapshot,
    PresenceState,
    PresenceSubscription,
    PresenceUpdate,
)

__all__ = ["PresenceAPI", "presence_state_request"]


class PresenceAPI(SubscriptionCore):
    """Presence subscriptions and presence states; mixed into ``MeshClient``."""

    _presence: dict[str, PresenceSubscription]
    # Presence states published without expiry, re-published after a reconnect (§14 (3)).
    _presence_states: dict[str, tuple[Any, bool]]

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
        if not succeeded(payload):
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
        result = await self._builtin(presence_state_request(room, value, expire_ms, silent))
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
        if not succeeded(result):
            raise SubscriptionDenied(target=room)
        state = PresenceState(string_ids(result.get("present")), None)
        state.reset(state.present, result.get("states"))
        return PresenceSnapshot(frozenset(state.present), state.states)

    def _state_republished(self, room: str, result: Any) -> Any:
        if result is not True:
            self._presence_states.pop(room, None)
        return result


def presence_state_request(
    room: str, state: Any, expire_after_ms: int | None, silent: bool
) -> PublishPresenceStateRequest:
    """The ``mesh/publish-presence-state`` request; ``expireAfter`` and ``silent`` only when set."""
    request = PublishPresenceStateRequest.model_construct(roomName=room, state=state)
    if expire_after_ms:
        request.expireAfter = expire_after_ms
    if silent:
        request.silent = True
    return request
