"""Callback plumbing: a dispatcher for sync and async callbacks and a small event emitter.

Every user callback of a client (events, pushes, subscription callbacks) goes through one
:class:`CallbackDispatcher`: synchronous callbacks run inline, in the order the client processes
frames; a callback that returns an awaitable has it awaited on one worker task, one at a time, so
async callbacks also observe frames in order without ever blocking the socket reader. Exceptions
from callbacks are logged and never break the client.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Callback", "CallbackDispatcher", "EventEmitter"]

logger = logging.getLogger("mesh_sdk")

Callback = Callable[..., Any]
"""A sync function or a function returning an awaitable (``async def``)."""


class CallbackDispatcher:
    """Runs callbacks: sync ones inline, awaitables in order on a single worker task."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Awaitable[Any]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def call(self, callback: Callback, *args: Any) -> None:
        """Invoke ``callback(*args)``; await its result later if it is awaitable."""
        try:
            result = callback(*args)
        except Exception:
            logger.exception("callback %r raised", callback)
            return
        if inspect.isawaitable(result):
            self._submit(result)

    def _submit(self, awaitable: Awaitable[Any]) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queue.put_nowait(awaitable)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._run(self._queue), name="mesh-sdk-callbacks"
            )

    async def _run(self, queue: asyncio.Queue[Awaitable[Any]]) -> None:
        while not queue.empty():
            awaitable = queue.get_nowait()
            try:
                await awaitable
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("async callback raised")

    async def drain(self) -> None:
        """Wait until every submitted awaitable has completed."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def aclose(self, grace: float | None = None) -> None:
        """Finish pending async callbacks (at most ``grace`` seconds), then stop the worker."""
        worker = self._worker
        if worker is not None and not worker.done():
            done, _ = await asyncio.wait({worker}, timeout=grace)
            if not done:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
        queue, self._queue, self._worker = self._queue, None, None
        while queue is not None and not queue.empty():
            leftover = queue.get_nowait()
            if inspect.iscoroutine(leftover):
                leftover.close()


class EventEmitter:
    """Named events with sync or async listeners, run by a :class:`CallbackDispatcher`."""

    def __init__(self, dispatcher: CallbackDispatcher) -> None:
        self._dispatcher = dispatcher
        self._listeners: dict[str, list[Callback]] = {}

    def on(self, event: str, callback: Callback) -> Callable[[], None]:
        """Register ``callback`` for ``event``.

        Returns:
            A function that removes the listener again.
        """
        self._listeners.setdefault(event, []).append(callback)
        return lambda: self.off(event, callback)

    def off(self, event: str, callback: Callback) -> None:
        """Remove one registration of ``callback`` for ``event`` (no error if absent)."""
        listeners = self._listeners.get(event)
        if listeners and callback in listeners:
            listeners.remove(callback)

    def listeners(self, event: str) -> list[Callback]:
        """Return a copy of the listeners of ``event``."""
        return list(self._listeners.get(event, ()))

    def emit(self, event: str, *args: Any) -> None:
        """Call every listener of ``event`` with ``args``."""
        for callback in self.listeners(event):
            self._dispatcher.call(callback, *args)
