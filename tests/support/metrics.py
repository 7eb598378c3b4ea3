"""Scraping a server's Prometheus exposition in tests (parsed by ``prometheus_client``)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from mesh_server import MeshServer
from mesh_server.metrics import Metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(source: MeshServer | Metrics) -> Samples:
    """Return every sample of a server's (or a facade's) exposition by ``(name, labels)``."""
    metrics = source if isinstance(source, Metrics) else source.metrics
    exposition = metrics.exposition()
    assert exposition is not None, "metrics are off"
    assert exposition.content_type.startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(exposition.body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return one sample's value (``0`` when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Return every labelled sample named ``name``, by labels."""
    return {labels: v for (n, labels), v in samples.items() if n == name}
