"""Shared machinery of subscriptions: callbacks, bounded async iterators, end of life."""

from __future__ import annotations

import asyncio
import logging
import weakref
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from mesh_sdk.events import Callback, CallbackDispatcher

if TYPE_CHECKING:
    from types import TracebackType

    from mesh_sdk.protocol.errors import ContractViolationError

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "AsyncContextSubscription",
    "Fanout",
    "SubscriptionIterator",
    "ViolationReporter",
]

logger = logging.getLogger("mesh_sdk")

E = TypeVar("E")

DEFAULT_QUEUE_SIZE = 1000
"""Items buffered per ``async for`` iterator before the oldest are dropped."""


class _End:
    """Sentinel closing an iterator's queue."""


_END = _End()


class SubscriptionIterator(AsyncIterator[E]):
    """One ``async for`` consumer of a subscription, with its own bounded queue.

    Items published while the consumer is slow are buffered up to ``maxsize``; beyond it the
    oldest item is dropped (logged) so memory stays bounded. Iteration ends when the
    subscription ends (unsubscribed, record deleted, client closed).
    """

    def __init__(self, fanout: Fanout[E], maxsize: int) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[E | _End] = asyncio.Queue(maxsize=max(maxsize, 1))
        self._done = False
        self.dropped = 0

    def _offer(self, item: E | _End) -> None:
        if self._done:
            return
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    logger.warning("slow subscription consumer: %d items dropped", self.dropped)

    def __aiter__(self) -> SubscriptionIterator[E]:
        return self

    async def __anext__(self) -> E:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, _End):
            self._done = True
            self._fanout.discard(self)
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop this consumer; the subscription itself stays active."""
        self._done = True
        self._fanout.discard(self)


class Fanout(Generic[E]):
    """Delivers items to callbacks (through the client's dispatcher) and to live iterators.

    Args:
        dispatcher: Runs the callbacks.
        queue_size: Items buffered per iterator.
        replay: Keep the last published item as the current state: a callback added or an
            iterator created later receives it first, then what is published after it (record
            subscriptions: every consumer starts from the state the subscription holds).
    """

    def __init__(
        self,
        dispatcher: CallbackDispatcher,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        *,
        replay: bool = False,
    ) -> None:
        self._dispatcher = dispatcher
        self._queue_size = queue_size
        self._callbacks: list[Callback] = []
        self._iterators: weakref.WeakSet[SubscriptionIterator[E]] = weakref.WeakSet()
        self._replay = replay
        self._latest: tuple[E, tuple[Any, ...]] | None = None
        self.ended = False

    def add_callback(self, callback: Callback) -> Callable[[], None]:
        """Register a callback (called with the current item first when replaying).

        Returns:
            A function removing the callback.
        """
        self._callbacks.append(callback)
        if self._latest is not None and not self.ended:
            self._dispatcher.call(callback, *self._latest[1])

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def iterator(self) -> SubscriptionIterator[E]:
        """Return a new consumer: the current item first when replaying, then later ones."""
        iterator = SubscriptionIterator(self, self._queue_size)
        if self.ended:
            iterator._offer(_END)
        else:
            if self._latest is not None:
                iterator._offer(self._latest[0])
            self._iterators.add(iterator)
        return iterator

    def discard(self, iterator: SubscriptionIterator[E]) -> None:
        """Forget an iterator (it finished or was closed)."""
        self._iterators.discard(iterator)

    def publish(self, item: E, *callback_args: Any) -> None:
        """Deliver ``item`` to iterators and call callbacks with ``callback_args`` (or ``item``)."""
        if self.ended:
            return
        args = callback_args or (item,)
        if self._replay:
            self._latest = (item, args)
        for callback in list(self._callbacks):
            self._dispatcher.call(callback, *args)
        for iterator in list(self._iterators):
            iterator._offer(item)

    def call(self, callbacks: list[Callback], *args: Any) -> None:
        """Call other callbacks (e.g. ``on_delete``) through the same dispatcher."""
        for callback in list(callbacks):
            self._dispatcher.call(callback, *args)

    def end(self) -> None:
        """End every iterator; later publications are dropped."""
        if self.ended:
            return
        self.ended = True
        for iterator in list(self._iterators):
            iterator._offer(_END)
        self._iterators = weakref.WeakSet()


class ViolationReporter(Protocol):
    """What subscriptions that decode payloads ask of their client: reporting what broke."""

    def _report_violation(self, violation: ContractViolationError) -> None:
        """Log a message or value that broke the contract and emit it to ``"error"`` listeners."""
        ...


class AsyncContextSubscription(ABC):
    """Mixin: ``async with`` unsubscribes on exit."""

    @abstractmethod
    async def unsubscribe(self) -> bool:
        """End the subscription (implemented by subclasses)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.unsubscribe()
