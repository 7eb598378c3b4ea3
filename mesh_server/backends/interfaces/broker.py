"""Fan-out: pub/sub, channels with history, direct sends, broadcasts (protocol.md §9)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

__all__ = ["Broker", "MessageHandler"]

MessageHandler = Callable[[str, bytes], None]
"""Called for every pub/sub message an instance receives: ``(channel, data)``.

It is called synchronously on the event loop and must not block; it may schedule tasks. An
exception it raises is logged and does not affect other deliveries.
"""


class Broker(ABC):
    """Moves encoded messages between instances; stores nothing but channel history.

    Guarantees
    ----------
    * **Delivery: at most once.** A message reaches each instance subscribed to its channel when
      it is published at most once, through the :data:`MessageHandler` given to ``start``. Nothing
      is retried (a retried Redis script could publish twice) and nothing is buffered for an
      instance that is not subscribed: a message in flight while a subscription is dropped, or
      while the link to the store is down, is lost.
    * **Ordering.** Per pub/sub channel, every subscriber sees messages in publication order
      (of one publisher, and of the store's serialisation across publishers). Nothing is
      ordered across channels.
    * **Subscriptions.** :meth:`subscribe` returns once the subscription is confirmed, so
      every message published after it returns is delivered (at most once). Subscriptions are
      per instance and idempotent; the server counts local subscribers.
    * **Atomicity.** :meth:`publish_channel` with history appends, trims and publishes in one
      step; :meth:`send_to_connection` looks the route up and publishes in one step.
    * **Costs.** A direct send is O(1) store operations; a broadcast is one publish that every
      instance resolves against its local connection and room index (protocol.md §13.2).
    * **Dropped.** A direct send to a connection registered nowhere publishes nothing and
      returns ``False``; channel history beyond the ``history`` most recent messages is gone.
    * **Size limits.** None here: payloads are published as given. The server bounds them
      (``max_message_size`` and the per-connection outbound limits).
    * **Raises** ``UnavailableError`` when the store is unreachable (also for a subscription
      not confirmed within the operation deadline).
    """

    # ------------------------------------------------------------------ pub/sub

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Subscribe this instance to ``channel`` and return once the subscription is confirmed.

        Idempotent per instance (the server counts local subscribers; the backend need not).
        """

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Drop this instance's subscription to ``channel`` (idempotent)."""

    @abstractmethod
    async def publish(self, channel: str, data: bytes) -> None:
        """Publish raw ``data`` on ``channel`` (at-most-once to current subscribers)."""

    # ------------------------------------------------------------------ application channels (§9)

    @abstractmethod
    async def publish_channel(self, channel: str, message: str, history: int = 0) -> None:
        """Publish ``message`` on the application channel (verbatim name).

        With ``history`` > 0 one atomic step appends it to the channel's history, trims the
        history to the ``history`` most recent messages and publishes.
        """

    @abstractmethod
    async def channel_history(self, channel: str, limit: int) -> list[str]:
        """Return up to ``limit`` most recent messages of ``channel``, newest first."""

    # ------------------------------------------------------------------ connections (§13.2)

    @abstractmethod
    async def send_to_connection(self, connection_id: str, frame: bytes) -> bool:
        """Deliver an encoded frame to a connection on any instance, in O(1) backend operations.

        The frame goes to the owner instance's inbox (:mod:`mesh_server.backends.messages`),
        also when the connection is local.

        Returns:
            ``False`` if the connection is not registered anywhere (nothing published).
        """

    @abstractmethod
    async def broadcast(
        self, frame: bytes, *, room: str | None = None, exclude: Iterable[str] = ()
    ) -> None:
        """Deliver ``frame`` to every connection (or every member of ``room``) on every instance.

        Costs O(1) backend messages per call: one publish that each instance resolves against
        its local connection and room index (protocol.md §13.2). ``exclude`` lists connection ids.
        """
