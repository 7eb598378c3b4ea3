"""The Prometheus implementation of the metrics facade (extra ``mesh-py[metrics]``).

Imported only by :func:`mesh_server.metrics.create_metrics` when ``prometheus_client`` is
installed. Every series lives in the registry given (by default one per server). The labelled
children of known commands are bound once (:meth:`PrometheusMetrics.bind_commands`), so a request
costs one dict lookup, one counter increment and one histogram observation.

Series (all counters end in ``_total`` in the exposition):

======================================  ============================================================
``mesh_connections``                    open connections (gauge)
``mesh_connects_total``                 connections registered
``mesh_closes_total{code}``             connections cleaned up, by close code
``mesh_commands_total{command,code}``   requests answered by the pipeline, by command and result
``mesh_command_duration_seconds``       pipeline time per request, by ``command`` (histogram)
``mesh_rate_limited_total``             requests refused with ``ERATELIMIT`` before the pipeline
``mesh_pushes_total``                   push frames handed to connections (one per recipient)
``mesh_frames_written_total``           frames written to connections (responses, pushes, pings)
``mesh_outbound_bytes_total``           bytes of those frames
``mesh_slow_consumer_closes_total``     connections closed with 4001
``mesh_presence_expiries_total``        presences and states expired by this instance's sweeps
``mesh_redis_errors_total``             failed Redis operations and reconnect attempts
``mesh_redis_outages_total``            Redis outages (one per unavailable period)
``mesh_redis_reconnects_total``         pub/sub reconnections
``mesh_record_conflicts_total``         record writes refused with ``ECONFLICT``
``mesh_record_retries_total``           record commits retried after a concurrent write
======================================  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from mesh_server.metrics import OTHER, Exposition, Metrics, close_label, result_label

if TYPE_CHECKING:
    from mesh_server.backends.base import BackendStats

__all__ = ["DURATION_BUCKETS", "PrometheusMetrics"]

DURATION_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Command-duration buckets in seconds: from in-process handlers (~0.1 ms) to the default
backend deadline (5 s) and beyond."""


class PrometheusMetrics(Metrics):
    """Counts into a ``prometheus_client`` registry.

    Args:
        registry: Where to register the series; ``None`` creates a private
            :class:`~prometheus_client.CollectorRegistry`.

    Attributes:
        registry: The registry scraped by :meth:`exposition`.
    """

    enabled: ClassVar[bool] = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._connections = Gauge("mesh_connections", "Open connections.", registry=r)
        self._connects = Counter("mesh_connects", "Connections registered.", registry=r)
        self._closes = Counter(
            "mesh_closes", "Connections cleaned up, by close code.", ["code"], registry=r
        )
        self._commands_total = Counter(
            "mesh_commands",
            "Requests answered by the pipeline, by command and result code.",
            ["command", "code"],
            registry=r,
        )
        self._duration = Histogram(
            "mesh_command_duration_seconds",
            "Pipeline time per request, in seconds, by command.",
            ["command"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._rate_limited = Counter(
            "mesh_rate_limited", "Requests refused with ERATELIMIT (PROTOCOL §15).", registry=r
        )
        self._pushes = Counter(
            "mesh_pushes", "Push frames handed to connections (one per recipient).", registry=r
        )
        self._frames = Counter("mesh_frames_written", "Frames written to connections.", registry=r)
        self._bytes = Counter("mesh_outbound_bytes", "Bytes of frames written.", registry=r)
        self._slow = Counter(
            "mesh_slow_consumer_closes", "Connections closed with 4001 (slow consumer).", registry=r
        )
        self._expiries = Counter(
            "mesh_presence_expiries", "Presences and states expired by this instance.", registry=r
        )
        self._backend = _BackendCollector()
        r.register(self._backend)
        self._bound: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._bind(OTHER, "ENOTFOUND")

    # ------------------------------------------------------------------ facade

    def bind_commands(self, names: Iterable[str]) -> None:
        """Bind the ``ok`` series of each command now, so its requests find them bound."""
        for name in names:
            self._bind(name, "ok")

    def _bind(self, name: str, code: str) -> tuple[Any, Any]:
        bound = (
            self._commands_total.labels(name, result_label(code)),
            self._duration.labels(name),
        )
        self._bound[(name, code)] = bound
        return bound

    def watch_backend(self, stats: Callable[[], BackendStats]) -> None:
        """Read the backend's counters from ``stats`` at every scrape."""
        self._backend.stats = stats

    def connection_opened(self) -> None:
        """Count a registered connection."""
        self._connects.inc()
        self._connections.inc()

    def connection_closed(self, code: int | None) -> None:
        """Count a cleaned-up connection by its close code."""
        self._connections.dec()
        self._closes.labels(close_label(code)).inc()

    def command(self, name: str, code: str, seconds: float) -> None:
        """Count an answered request and observe its duration."""
        bound = self._bound.get((name, code))
        if bound is None:
            bound = self._bind(name, code)
        bound[0].inc()
        bound[1].observe(seconds)

    def rate_limited(self) -> None:
        """Count a rate-limited request."""
        self._rate_limited.inc()

    def pushed(self) -> None:
        """Count a push frame handed to a connection."""
        self._pushes.inc()

    def written(self, size: int) -> None:
        """Count a written frame and its bytes."""
        self._frames.inc()
        self._bytes.inc(size)

    def slow_consumer(self) -> None:
        """Count a 4001 close."""
        self._slow.inc()

    def presence_expired(self, count: int) -> None:
        """Count expired presence entries."""
        if count:
            self._expiries.inc(count)

    def exposition(self) -> Exposition:
        """Return the text exposition of :attr:`registry`."""
        return Exposition(generate_latest(self.registry), CONTENT_TYPE_LATEST)


class _BackendCollector(Collector):
    """Counters the backend keeps itself, read at scrape time (no cost between scrapes)."""

    def __init__(self) -> None:
        self.stats: Callable[[], BackendStats] | None = None

    def describe(self) -> Iterable[Metric]:
        # Described without reading the backend: registration must not need a started one.
        return [CounterMetricFamily(name, doc) for name, doc, _ in _BACKEND_SERIES]

    def collect(self) -> Iterator[Metric]:
        stats = self.stats() if self.stats is not None else None
        for name, doc, field in _BACKEND_SERIES:
            value = getattr(stats, field) if stats is not None else 0
            yield CounterMetricFamily(name, doc, value=value)


_BACKEND_SERIES: Final = (
    ("mesh_redis_errors", "Failed Redis operations and reconnect attempts.", "errors"),
    ("mesh_redis_outages", "Redis outages (periods of unavailability).", "outages"),
    ("mesh_redis_reconnects", "Redis pub/sub reconnections.", "reconnects"),
    ("mesh_record_conflicts", "Record writes refused with ECONFLICT.", "record_conflicts"),
    ("mesh_record_retries", "Record commits retried after a concurrent write.", "record_retries"),
)
