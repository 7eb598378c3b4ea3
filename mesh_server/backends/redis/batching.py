"""Group commit: concurrent calls of one kind share one Redis round trip.

While one batch is in flight, later calls queue; when it returns, everything queued (up to the
batch limit) goes out as the next batch. A lone call goes out at once, so an idle instance pays
no latency for this; under a burst (a connection storm) the number of script calls drops from
one per call to one per round trip.

Each caller awaits its own future: a batch that succeeds completes all of its callers, a batch
that fails raises the same exception (``UnavailableError`` from the backend's error boundary) in
each caller of that batch and no other. A caller cancelled (or past its deadline) before its
batch went out is left out of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Coalesce concurrent :meth:`submit` calls into batches handed to one ``flush`` function.

    Args:
        flush: Carries out one batch of items (one script call); its exception is each of the
            batch's callers' exception.
        max_batch: Most items in one batch (at least 1).

    Raises:
        ValueError: ``max_batch`` is below 1.
    """

    def __init__(self, flush: Callable[[Sequence[T]], Awaitable[None]], max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._flush = flush
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0
        """How many batches were flushed (for tests and stats)."""

    async def submit(self, item: T) -> None:
        """Queue ``item``, then wait until the batch that carries it was flushed.

        Raises:
            Exception: Whatever ``flush`` raised for that batch.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        # One task flushes batch after batch until the queue is empty: callers come and go
        # (a cancelled caller must not abandon the others of its batch).
        batch: list[tuple[T, asyncio.Future[None]]] = []
        try:
            while self._queue:
                taken = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                batch = [entry for entry in taken if not entry[1].done()]
                if not batch:
                    continue
                self.batches += 1
                try:
                    await self._flush([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        except BaseException:
            # Cancelled (the loop shuts down): nobody is left to flush for the waiting callers.
            for _, future in [*batch, *self._queue]:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            self._drainer = None
