"""Coordination backends: :class:`~mesh_server.backends.base.Backend` and its implementations.

``Backend`` is the intersection of the interfaces in :mod:`mesh_server.backends.interfaces`
(broker, instance registry, rooms, presence, records, metadata); ``memory/`` and ``redis/``
implement each in a module of the same name.

:func:`create_backend` picks one from configuration: the in-process memory backend without a Redis
URL, the Redis backend (imported only then) with one.
"""

from __future__ import annotations

import importlib
from typing import Any

from mesh_server.backends.base import Backend
from mesh_server.backends.memory import MemoryBackend, MemoryHub

__all__ = ["Backend", "MemoryBackend", "MemoryHub", "create_backend"]


def create_backend(redis_url: str | None, *, namespace: str = "mesh:", **opts: Any) -> Backend:
    """Return a backend for ``redis_url``: memory for ``None``, else Redis.

    Args:
        redis_url: ``redis://`` URL, or ``None`` for the single-process memory backend.
        namespace: Prefix of internal keys and channels (protocol.md §9.2).
        **opts: Passed on to the backend's constructor.

    Returns:
        An unstarted backend.
    """
    if redis_url is None:
        return MemoryBackend(namespace, **opts)
    # Imported lazily so the memory backend works without touching the Redis client.
    module = importlib.import_module("mesh_server.backends.redis")
    backend = module.RedisBackend(redis_url, namespace=namespace, **opts)
    if not isinstance(backend, Backend):
        raise TypeError("mesh_server.backends.redis.RedisBackend is not a Backend")
    return backend
