"""The ``mesh`` command line: ``mesh serve module:attr`` and ``mesh codegen``.

``mesh serve`` imports a :class:`~mesh_server.MeshServer` object (or a zero-argument factory
returning one) and serves it until interrupted; ``--host``, ``--port`` and ``--redis-url``
override the object's own settings. uvloop is used when installed. Logging: one INFO line at
startup, DEBUG lines per connection open/close with ``--log-level debug``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mesh_server.server import MeshServer

__all__ = ["app", "load_server", "main"]

app = typer.Typer(
    name="mesh",
    help="Mesh real-time WebSocket framework.",
    no_args_is_help=True,
    add_completion=False,
)


def load_server(target: str) -> MeshServer:
    """Import ``module:attr`` and return the MeshServer it names.

    ``attr`` may be a dotted path, and may name a callable that returns a server.

    Raises:
        typer.BadParameter: The target is malformed or does not name a MeshServer.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise typer.BadParameter(f"expected module:attr, got {target!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise typer.BadParameter(f"{module_name!r} has no attribute {attr!r}") from exc
    if not isinstance(obj, MeshServer) and callable(obj):
        obj = obj()
    if not isinstance(obj, MeshServer):
        raise typer.BadParameter(f"{target!r} is not a MeshServer (got {type(obj).__name__})")
    return obj


async def _serve(server: MeshServer) -> None:
    await server.start()
    typer.echo(f"Serving on {server.url} (Ctrl-C to stop)")
    try:
        await server.serve_forever()
    finally:
        await server.close()


@app.command()
def serve(
    target: Annotated[str, typer.Argument(help="The server object, as module:attr.")],
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (0: any free port).")] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Redis URL (default: embedded memory).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "info",
) -> None:
    """Serve a MeshServer object until interrupted."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = load_server(target)
    server.configure(host=host, port=port, redis_url=redis_url)
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(_serve(server))


@app.command()
def codegen(
    contract_dir: Annotated[Path, typer.Argument(help="The contract directory.")],
    out: Annotated[Path, typer.Option("--out", help="Output package directory.")],
    check: Annotated[
        bool, typer.Option("--check", help="Only compare; exit 1 if out of date.")
    ] = False,
    lang: Annotated[
        str, typer.Option("--lang", help="python (pydantic package) or ts (TypeScript).")
    ] = "python",
) -> None:
    """Generate typed bindings from a contract (codegen-time dependencies needed)."""
    # Imported here so that mesh_server never imports codegen at run time.
    from codegen.cli import codegen_command

    raise typer.Exit(codegen_command(contract_dir, out, check, lang=lang))


def main() -> None:
    """Console-script entry point (``mesh``)."""
    app()
