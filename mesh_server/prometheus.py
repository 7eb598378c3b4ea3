"""The Prometheus implementation of the metrics facade (extra ``mesh-py[metrics]``).

Imported only by :func:`mesh_server.metrics_export.create_metrics` when ``prometheus_client`` is
installed. The series are registered as one custom collector in the registry given (by default a
registry of the server's own).

Why a collector rather than ``prometheus_client.Counter`` objects: each of their updates takes a
lock (about 1 µs on a loaded 2-core box, and a request makes four), while everything here runs on
the one event-loop thread. Updates are plain integer additions on this object, and
:meth:`_Collector.collect` turns them into metric families at scrape time; ``prometheus_client``
still owns the registry, the families and the text format. The series of known commands are
bound once (:meth:`PrometheusMetrics.bind_commands`), so a request costs one dict lookup, two
additions and one bisection.

Series (counters end in ``_total`` in the exposition):

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

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, ClassVar, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
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
"""Upper bounds (seconds) of the command-duration buckets: from in-process handlers (~0.1 ms)
to the default backend deadline (5 s) and beyond (``+Inf``)."""

_LE: Final = (*(repr(bound) for bound in DURATION_BUCKETS), "+Inf")


class _CommandSeries:
    """Result counts and the duration histogram of one command label."""

    __slots__ = ("buckets", "results", "total")

    def __init__(self) -> None:
        self.results: dict[str, int] = {"ok": 0}
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0


class PrometheusMetrics(Metrics):
    """Counts for a ``prometheus_client`` registry.

    Args:
        registry: Where to register the series; ``None`` creates a private
            :class:`~prometheus_client.CollectorRegistry`. A shared registry (such as
            ``prometheus_client.REGISTRY``) takes one server: a second one's series clash.

    Raises:
        ValueError: ``registry`` already holds series of these names.

    Attributes:
        registry: The registry scraped by :meth:`exposition`.
    """

    enabled: ClassVar[bool] = True

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.connections = 0
        self.connects = 0
        self.closes: dict[str, int] = {}
        self.commands: dict[str, _CommandSeries] = {OTHER: _CommandSeries()}
        self.rate_limits = 0
        self.pushes = 0
        self.frames = 0
        self.bytes = 0
        self.slow_consumers = 0
        self.expiries = 0
        self.backend_stats: Callable[[], BackendStats] | None = None
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(_Collector(self))

    # ------------------------------------------------------------------ facade

    def bind_commands(self, names: Iterable[str]) -> None:
        """Create the series of each command now, so its requests find them."""
        for name in names:
            self.commands.setdefault(name, _CommandSeries())

    def watch_backend(self, stats: Callable[[], BackendStats]) -> None:
        """Read the backend's counters from ``stats`` at every scrape."""
        self.backend_stats = stats

    def connection_opened(self) -> None:
        """Count a registered connection."""
        self.connects += 1
        self.connections += 1

    def connection_closed(self, code: int | None) -> None:
        """Count a cleaned-up connection by its close code."""
        self.connections -= 1
        label = close_label(code)
        self.closes[label] = self.closes.get(label, 0) + 1

    def command(self, name: str, code: str, seconds: float) -> None:
        """Count an answered request and observe its duration."""
        series = self.commands.get(name)
        if series is None:
            # A command exposed after start (the pipeline passes registered names only).
            series = self.commands[name] = _CommandSeries()
        results = series.results
        count = results.get(code)
        if count is None:
            code = result_label(code)
            count = results.get(code, 0)
        results[code] = count + 1
        series.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        series.total += seconds

    def rate_limited(self) -> None:
        """Count a rate-limited request."""
        self.rate_limits += 1

    def pushed(self) -> None:
        """Count a push frame handed to a connection."""
        self.pushes += 1

    def written(self, size: int) -> None:
        """Count a written frame and its bytes."""
        self.frames += 1
        self.bytes += size

    def slow_consumer(self) -> None:
        """Count a 4001 close."""
        self.slow_consumers += 1

    def presence_expired(self, count: int) -> None:
        """Count expired presence entries."""
        self.expiries += count

    def exposition(self) -> Exposition:
        """Return the text exposition of :attr:`registry`."""
        return Exposition(generate_latest(self.registry), CONTENT_TYPE_LATEST)


class _Collector(Collector):
    """Turns the counts of one :class:`PrometheusMetrics` into metric families."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._m = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        m = self._m
        yield GaugeMetricFamily("mesh_connections", "Open connections.", m.connections)
        yield CounterMetricFamily("mesh_connects", "Connections registered.", m.connects)
        closes = CounterMetricFamily(
            "mesh_closes", "Connections cleaned up, by close code.", labels=["code"]
        )
        for code, count in sorted(m.closes.items()):
            closes.add_metric([code], count)
        yield closes
        yield from self._commands()
        for name, doc, value in (
            (
                "mesh_rate_limited",
                "Requests refused with ERATELIMIT (protocol.md §15).",
                m.rate_limits,
            ),
            ("mesh_pushes", "Push frames handed to connections (one per recipient).", m.pushes),
            ("mesh_frames_written", "Frames written to connections.", m.frames),
            ("mesh_outbound_bytes", "Bytes of frames written to connections.", m.bytes),
            ("mesh_slow_consumer_closes", "Connections closed with 4001.", m.slow_consumers),
            ("mesh_presence_expiries", "Presences and states expired here.", m.expiries),
        ):
            yield CounterMetricFamily(name, doc, value)
        stats = m.backend_stats() if m.backend_stats is not None else None
        for name, doc, field in _BACKEND_SERIES:
            yield CounterMetricFamily(name, doc, getattr(stats, field) if stats else 0)

    def _commands(self) -> Iterator[Metric]:
        results = CounterMetricFamily(
            "mesh_commands",
            "Requests answered by the pipeline, by command and result code.",
            labels=["command", "code"],
        )
        durations = HistogramMetricFamily(
            "mesh_command_duration_seconds",
            "Pipeline time per request, in seconds, by command.",
            labels=["command"],
        )
        for name, series in sorted(self._m.commands.items()):
            for code, count in sorted(series.results.items()):
                results.add_metric([name, code], count)
            cumulative, buckets = 0, []
            for le, count in zip(_LE, series.buckets, strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            durations.add_metric([name], buckets, series.total)
        yield results
        yield durations


_BACKEND_SERIES: Final = (
    ("mesh_redis_errors", "Failed Redis operations and reconnect attempts.", "errors"),
    ("mesh_redis_outages", "Redis outages (periods of unavailability).", "outages"),
    ("mesh_redis_reconnects", "Redis pub/sub reconnections.", "reconnects"),
    ("mesh_record_conflicts", "Record writes refused with ECONFLICT.", "record_conflicts"),
    ("mesh_record_retries", "Record commits retried after a concurrent write.", "record_retries"),
)
