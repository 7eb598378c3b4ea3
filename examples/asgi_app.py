"""Mesh as an ASGI application, alone or mounted in FastAPI (``pip install 'mesh-py[asgi]'``).

Run one of::

    uvicorn examples.asgi_app:app --ws-per-message-deflate false    # FastAPI, Mesh at /ws/
    uvicorn examples.asgi_app:asgi --ws-per-message-deflate false   # Mesh alone, any path

FastAPI does not pass lifespan events to mounted apps, so ``app`` gets the Mesh server's
lifespan (``FastAPI(lifespan=mesh.lifespan)``); run alone, ``asgi`` handles them itself. The
``authenticate`` hook sees the ASGI request: path, query, headers, cookies and client address.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from mesh_server import MeshAuthError, MeshServer, UpgradeRequest


def authenticate(request: UpgradeRequest) -> dict[str, Any]:
    """Accept a ``?user=`` (or ``user`` cookie) as the connection's metadata."""
    user = request.query.get("user") or request.cookies.get("user")
    if not user:
        raise MeshAuthError(401, "user required")
    return {"user": user}


mesh = MeshServer(authenticate=authenticate)
mesh.track_presence("lobby")


@mesh.command("whoami")
async def whoami(ctx: Any) -> Any:
    return await mesh.connections.get_metadata(ctx.connection)


asgi = mesh.asgi_app()

app = FastAPI(lifespan=mesh.lifespan)
app.mount("/ws", asgi)


@app.get("/")
async def index() -> dict[str, str]:
    return {"mesh": "/ws/", "health": "/ws/healthz"}
