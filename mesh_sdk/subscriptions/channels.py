"""Channel subscriptions (protocol.md §9): history, live messages, typed decoding."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from mesh_sdk.events import CallbackDispatcher
from mesh_sdk.protocol.codec import dumps
from mesh_sdk.protocol.errors import ContractViolationError, ValidationError
from mesh_sdk.subscriptions.base import (
    DEFAULT_QUEUE_SIZE,
    AsyncContextSubscription,
    Fanout,
    SubscriptionIterator,
    ViolationReporter,
)

__all__ = ["ChannelOwner", "ChannelSubscription", "MessageDecoder"]

logger = logging.getLogger("mesh_sdk")

T = TypeVar("T")

MessageDecoder = Callable[[str], T]
"""Turns a channel message (always a string on the wire, §8) into the subscription's type."""


class ChannelOwner(ViolationReporter, Protocol):
    """What a :class:`ChannelSubscription` asks of its client (the channel half of the client)."""

    async def unsubscribe_channel(self, channel: str) -> bool:
        """Send ``mesh/unsubscribe-channel`` and drop the local subscription."""
        ...


class ChannelSubscription(AsyncContextSubscription, Generic[T]):
    """A live subscription to one channel.

    Messages are decoded with the ``model`` given to
    :meth:`~mesh_sdk.client.MeshClient.subscribe_channel` (``model.model_validate_json``), else
    with the contract's channel schema, else kept as the raw string; unknown members are ignored
    unless the subscription reads strictly. A message that fails to decode is logged and skipped
    (counted in :attr:`decode_errors`); when it fails the contract's schema (not a ``model`` of
    the caller's own), the server broke the contract: the client's ``"error"`` listeners also
    receive a :class:`~mesh_sdk.protocol.errors.ContractViolationError` (``target`` = the
    channel). The subscription keeps delivering the messages that follow.

    Consume messages with callbacks (:meth:`on_message`, sync or async) and/or
    ``async for message in subscription`` (each iterator has its own bounded queue). After a
    reconnect the client re-subscribes without history, so nothing is replayed (§14).

    Attributes:
        channel: The channel name.
        history: Decoded history returned by the subscribe request, **newest first** (§9.5).
        decode_errors: Messages dropped because they did not decode.
    """

    def __init__(
        self,
        owner: ChannelOwner,
        channel: str,
        decode: MessageDecoder[T],
        dispatcher: CallbackDispatcher,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.channel = channel
        self.history: list[T] = []
        self.decode_errors = 0
        self._confirmed = False
        self._owner = owner
        self._decode = decode
        self._fanout: Fanout[T] = Fanout(dispatcher, queue_size)

    def __repr__(self) -> str:
        state = "ended" if self.ended else "active"
        return f"<ChannelSubscription {self.channel!r} {state}>"

    @property
    def ended(self) -> bool:
        """Whether the subscription is over (unsubscribed, denied on resubscribe, client closed)."""
        return self._fanout.ended

    def on_message(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Call ``callback(message)`` for every live message (sync or async).

        Returns:
            A function removing the callback.
        """
        return self._fanout.add_callback(callback)

    def __aiter__(self) -> SubscriptionIterator[T]:
        return self._fanout.iterator()

    def messages(self) -> SubscriptionIterator[T]:
        """Return a new async iterator over live messages (same as ``aiter(subscription)``)."""
        return self._fanout.iterator()

    async def unsubscribe(self) -> bool:
        """Unsubscribe (``mesh/unsubscribe-channel``) and end iteration.

        Returns:
            The server's answer: whether this connection was subscribed (§9.4); ``False`` if the
            subscription had already ended.
        """
        if self.ended:
            return False
        return await self._owner.unsubscribe_channel(self.channel)

    # ----------------------------------------------------------------------------------------
    # Driven by the client

    def _set_history(self, history: Any) -> None:
        items = history if isinstance(history, list) else []
        decoded = []
        for raw in items:
            ok, value = self._try_decode(raw)
            if ok:
                decoded.append(value)
        self.history = decoded

    def _deliver(self, message: Any) -> None:
        ok, value = self._try_decode(message)
        if ok:
            self._fanout.publish(value)

    def _try_decode(self, message: Any) -> tuple[bool, Any]:
        text = message if isinstance(message, str) else dumps(message).decode()
        try:
            return True, self._decode(text)
        except ValidationError as exc:  # only the contract's decoder raises the Mesh error
            self.decode_errors += 1
            self._owner._report_violation(ContractViolationError.broke(exc, target=self.channel))
            return False, None
        except Exception as exc:
            self.decode_errors += 1
            logger.warning("dropping undecodable message on channel %r: %s", self.channel, exc)
            return False, None

    def _end(self) -> None:
        self._fanout.end()
