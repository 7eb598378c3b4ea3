"""The in-process backend (default, one process): see :class:`MemoryBackend`."""

from mesh_server.backends.memory.backend import DEFAULT_INSTANCE_TTL, MemoryBackend
from mesh_server.backends.memory.hub import MemoryHub

__all__ = ["DEFAULT_INSTANCE_TTL", "MemoryBackend", "MemoryHub"]
