"""Middleware: callables run before a command handler (protocol.md §3.4 steps 4–5).

A middleware is ``def mw(ctx) -> None`` or ``async def mw(ctx) -> None``. Returning continues
the pipeline; raising stops it and the error is sent (a :class:`~mesh_server.MeshError` as is,
anything else as a generic ``ESERVER``). Middleware that rejects a command should raise
:class:`~mesh_server.ForbiddenError` (protocol.md §4).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mesh_server.context import Context

__all__ = ["Handler", "Middleware", "check_middleware", "run_middleware"]

Middleware = Callable[[Context], Awaitable[None] | None]
"""A global or per-command middleware."""

Handler = Callable[[Context], Awaitable[Any] | Any]
"""A command handler: returns the response payload (sync or async)."""


def check_middleware(fns: Sequence[Any]) -> tuple[Middleware, ...]:
    """Return ``fns`` as a tuple after checking each is callable.

    Raises:
        TypeError: One of them is not callable.
    """
    for fn in fns:
        if not callable(fn):
            raise TypeError(f"middleware must be callable, not {fn!r}")
    return tuple(fns)


async def run_middleware(chain: Sequence[Middleware], ctx: Context) -> None:
    """Run ``chain`` in order on ``ctx``; sync middleware is called without awaiting."""
    for fn in chain:
        result = fn(ctx)
        if result is not None and inspect.isawaitable(result):
            await result
