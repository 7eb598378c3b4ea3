"""The backend interfaces: one ABC per concern, each with Guarantees; ``Backend`` is their sum."""

from __future__ import annotations

import inspect

import pytest

from mesh_server.backends.base import Backend
from mesh_server.backends.interfaces.broker import Broker
from mesh_server.backends.interfaces.metadata import MetadataStore
from mesh_server.backends.interfaces.presence import PresenceStore
from mesh_server.backends.interfaces.records import RecordStore
from mesh_server.backends.interfaces.registry import InstanceRegistry
from mesh_server.backends.interfaces.rooms import RoomStore
from mesh_server.backends.memory import MemoryBackend
from mesh_server.backends.redis import RedisBackend

INTERFACES = (Broker, InstanceRegistry, RoomStore, PresenceStore, RecordStore, MetadataStore)


@pytest.mark.parametrize("interface", INTERFACES, ids=lambda i: i.__name__)
def test_every_interface_documents_its_guarantees(interface: type) -> None:
    doc = inspect.getdoc(interface) or ""
    assert "Guarantees\n----------" in doc
    for topic in ("Raises", "Size limits"):
        assert topic in doc, f"{interface.__name__} says nothing about {topic.lower()}"


def test_interfaces_share_no_operation() -> None:
    seen: dict[str, str] = {}
    for interface in INTERFACES:
        for name in interface.__abstractmethods__:
            assert name not in seen, f"{name} is in {seen.get(name)} and {interface.__name__}"
            seen[name] = interface.__name__


def test_backend_is_the_interfaces_plus_its_lifecycle() -> None:
    operations = set().union(*(interface.__abstractmethods__ for interface in INTERFACES))
    assert set(Backend.__abstractmethods__) == operations | {"start", "close"}


@pytest.mark.parametrize("backend", [MemoryBackend, RedisBackend], ids=lambda b: b.__name__)
def test_both_backends_implement_every_interface(backend: type) -> None:
    assert issubclass(backend, Backend)
    assert not inspect.isabstract(backend)
    for interface in INTERFACES:
        # Each operation comes from the backend's module for that concern, not the composite.
        module = backend.__module__.rsplit(".", 1)[0] + "." + interface.__module__.rsplit(".")[-1]
        for name in interface.__abstractmethods__:
            assert getattr(backend, name).__module__ == module, (backend.__name__, name)
