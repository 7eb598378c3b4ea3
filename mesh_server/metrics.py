"""Server metrics: the small facade the core calls, and its no-op implementation.

The core (connections, pipeline, features) reports what happens through :class:`Metrics`. Two
implementations exist:

* :class:`Metrics` itself does nothing; its :attr:`Metrics.enabled` is ``False``, and hot paths
  test that class attribute before calling, so disabled metrics cost one attribute check.
* :class:`mesh_server.prometheus.PrometheusMetrics` (extra ``mesh-py[metrics]``) counts into a
  ``prometheus_client`` registry of the server's own.

:func:`mesh_server.metrics_export.create_metrics` picks one; without ``prometheus_client``
installed the server runs with the no-op facade and never imports it.
:class:`mesh_server.metrics_export.MetricsEndpoint` serves the scrape over plain HTTP
(``GET /metrics`` on the WebSocket port by default). Counters that only the backend can keep
(Redis errors, outages, reconnects, record conflicts and retries) are plain integers on the
backend (:meth:`Backend.stats <mesh_server.backends.base.Backend.stats>`), read at scrape time.

Label cardinality is bounded: command labels are registered commands (built-ins and
application commands) or ``"other"``, result codes are ``"ok"``, a code of the error table or
``"other"``, close codes are those of protocol.md §16 and RFC 6455 or ``"other"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar, Final, NamedTuple

from mesh_sdk.protocol.errors import ERROR_CLASSES

if TYPE_CHECKING:
    from mesh_server.backends.base import BackendStats

__all__ = [
    "CLOSE_CODES",
    "NO_METRICS",
    "OTHER",
    "RESULT_CODES",
    "Exposition",
    "Metrics",
    "close_label",
    "result_label",
]

OTHER: Final = "other"
"""The label value of every command, result code or close code outside the bounded sets."""

RESULT_CODES: Final = frozenset({"ok", *ERROR_CLASSES})
"""Result-code labels: ``"ok"`` and the codes of the error table (others are ``"other"``)."""

CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 4000, 4001, 4002}
)
"""Close-code labels: RFC 6455's and protocol.md §16's (others, e.g. a client's 4xxx, are
``"other"``)."""


class Exposition(NamedTuple):
    """A scrape: the text exposition and its ``Content-Type``."""

    body: bytes
    content_type: str


class Metrics:
    """The metrics facade; this base class records nothing (metrics off).

    Callers on hot paths test :attr:`enabled` first; the others may call unconditionally.
    """

    enabled: ClassVar[bool] = False
    """Whether anything is recorded (``False`` here, ``True`` for Prometheus)."""

    def bind_commands(self, names: Iterable[str]) -> None:
        """Prepare the labelled series of these registered command names (called at start)."""

    def watch_backend(self, stats: Callable[[], BackendStats]) -> None:
        """Read the backend's own counters from ``stats`` at every scrape."""

    def connection_opened(self) -> None:
        """A connection was registered (connects +1, open connections +1)."""

    def connection_closed(self, code: int | None) -> None:
        """A registered connection was cleaned up after closing with ``code``."""

    def command(self, name: str, code: str, seconds: float) -> None:
        """A request was answered with ``code`` after ``seconds``.

        ``name`` is a registered command's, or :data:`OTHER` for an unknown command.
        """

    def rate_limited(self) -> None:
        """A request was refused with ``ERATELIMIT`` before reaching the pipeline (§15)."""

    def pushed(self) -> None:
        """A push frame was handed to a connection (one per recipient of a fan-out)."""

    def written(self, size: int) -> None:
        """A frame of ``size`` bytes was written to a connection."""

    def slow_consumer(self) -> None:
        """A connection was closed with 4001 for exceeding its outbound bounds (§15)."""

    def presence_expired(self, count: int) -> None:
        """A presence sweep expired ``count`` entries (§10.3)."""

    def exposition(self) -> Exposition | None:
        """Return the current scrape, or ``None`` when metrics are off."""
        return None


NO_METRICS: Final = Metrics()
"""The shared no-op facade."""


def close_label(code: int | None) -> str:
    """Return the bounded label of a close code (``"1006"`` when none was received)."""
    if code is None:
        return "1006"
    return str(code) if code in CLOSE_CODES else OTHER


def result_label(code: str) -> str:
    """Return the bounded label of a result code."""
    return code if code in RESULT_CODES else OTHER
