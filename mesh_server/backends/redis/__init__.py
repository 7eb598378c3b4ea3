"""Redis backend (scale-out): see :class:`RedisBackend`."""

from mesh_server.backends.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
