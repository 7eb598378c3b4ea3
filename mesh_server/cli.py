"""The ``mesh`` command line: ``mesh serve module:attr``, ``mesh codegen`` and the contract tools.

Contract tools (they need the ``codegen`` extra): ``mesh check CONTRACT``, ``mesh export asyncapi
CONTRACT``, ``mesh contract diff OLD NEW`` and ``mesh contract fingerprint CONTRACT``; a missing
codegen dependency prints a one-line ``pip install 'mesh-py[codegen]'`` hint and exits 3.

``mesh serve`` imports a :class:`~mesh_server.MeshServer` object (or a zero-argument factory
returning one) and serves it until SIGTERM or SIGINT, then shuts down gracefully within
``--shutdown-timeout`` and exits 0 (:mod:`mesh_server.runner`); ``--host``, ``--port``,
``--redis-url``, ``--backlog``, ``--transport``, the health and the metrics-endpoint options
override the object's own settings, ``--reload`` restarts it on code changes. The soft
``RLIMIT_NOFILE`` is raised to its hard limit (one descriptor per connection). uvloop is used
when installed. Logging (:mod:`mesh_server.logs`): ``--log-format text|json``, ``--log-level``;
one INFO line at startup naming transport, backend, contract, address and key limits, DEBUG
lines per connection open/close and per command outcome.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from mesh_server.logs import LOG_FORMATS, configure_logging
from mesh_server.runner import reload_forever, serve_until_signalled
from mesh_server.server import MeshServer

__all__ = ["app", "load_server", "main"]

# Plain (non-rich) help: it shows boolean flags such as ``--check`` as flags, not ``<bool>``.
app = typer.Typer(
    name="mesh",
    help="Mesh real-time WebSocket framework.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
export_app = typer.Typer(
    help="Export a contract to other formats.", no_args_is_help=True, rich_markup_mode=None
)
contract_app = typer.Typer(
    help="Compare and identify contracts.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(export_app, name="export")
app.add_typer(contract_app, name="contract")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mesh-py {importlib.metadata.version('mesh-py')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Mesh real-time WebSocket framework."""


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


@app.command()
def serve(
    target: Annotated[str, typer.Argument(help="The server object, as module:attr.")],
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (0: any free port).")] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis-url", help="Redis URL (default: embedded memory).")
    ] = None,
    backlog: Annotated[
        int | None,
        typer.Option(min=1, help="Listen backlog (default 1024; Linux caps it at somaxconn)."),
    ] = None,
    transport: Annotated[
        str | None,
        typer.Option(help="Built-in transport: websockets (default) or picows (mesh-py[fast])."),
    ] = None,
    health: Annotated[
        bool | None,
        typer.Option("--health/--no-health", help="Answer GET on the health and readiness paths."),
    ] = None,
    health_path: Annotated[
        str | None, typer.Option(help="Liveness endpoint path (default /healthz).")
    ] = None,
    readiness_path: Annotated[
        str | None, typer.Option(help="Readiness endpoint path (default /readyz).")
    ] = None,
    metrics_endpoint: Annotated[
        bool | None,
        typer.Option(
            "--metrics-endpoint/--no-metrics-endpoint",
            help="Answer GET on the metrics path (needs the metrics extra).",
        ),
    ] = None,
    metrics_path: Annotated[
        str | None, typer.Option(help="Prometheus metrics endpoint path (default /metrics).")
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="Logging level: debug, info, warning, error.")
    ] = "info",
    log_format: Annotated[
        str, typer.Option(help="Log lines as text, or json (one object per line).")
    ] = "text",
    shutdown_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Seconds a graceful shutdown (SIGTERM/SIGINT) may take (default: the "
            "server's shutdown_timeout, 10).",
        ),
    ] = None,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload",
            help="Restart when a .py file under the app's directory changes (development; "
            "needs the reload extra).",
        ),
    ] = False,
) -> None:
    """Serve a MeshServer object until SIGTERM or SIGINT, then shut it down gracefully."""
    if log_format not in LOG_FORMATS:
        raise typer.BadParameter("expected json or text", param_hint="--log-format")
    try:
        configure_logging(log_level, log_format)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None
    if reload:
        # The child gets this very command line minus --reload, so every serve option (also
        # those added later) reaches it unchanged.
        child = [arg for arg in sys.argv[1:] if arg != "--reload"]
        try:
            reload_forever(target, child, stop_timeout=shutdown_timeout or 10.0)
        except (RuntimeError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--reload") from None
        return
    server = load_server(target)
    try:
        server.configure(
            host=host,
            port=port,
            redis_url=redis_url,
            backlog=backlog,
            health=health,
            health_path=health_path,
            readiness_path=readiness_path,
            metrics_endpoint=metrics_endpoint,
            metrics_path=metrics_path,
            transport=transport,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if shutdown_timeout is not None:
        server.shutdown_timeout = shutdown_timeout
    raise_file_limit()
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    runner(serve_until_signalled(server))


def raise_file_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now in effect.

    Each connection holds a file descriptor, and the common soft default (1024) would cap an
    instance far below what it serves (issue 12: 10 000 idle connections); the hard limit is the
    administrator's bound. Without the ``resource`` module (Windows) nothing changes (``-1``).
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return soft
    # Linux refuses an infinite NOFILE: the kernel's per-process ceiling bounds it then.
    target = hard if hard != resource.RLIM_INFINITY else _nr_open(soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def _nr_open(fallback: int) -> int:
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as file:
            return int(file.read())
    except (OSError, ValueError):
        return fallback


def _tool(name: str) -> ModuleType:
    """Import a codegen module at call time, so mesh_server never imports codegen at run time."""
    from codegen.deps import MissingDependencyError, import_tool

    try:
        return import_tool(name)
    except MissingDependencyError as exc:
        typer.echo(str(exc))
        raise typer.Exit(3) from None


ContractDir = Annotated[Path, typer.Argument(help="The contract directory.")]


@app.command()
def codegen(
    contract_dir: ContractDir,
    out: Annotated[Path, typer.Option("--out", help="Output package directory.")],
    check: Annotated[
        bool, typer.Option("--check", help="Only compare; exit 1 if out of date.")
    ] = False,
    lang: Annotated[
        str, typer.Option("--lang", help="python (pydantic package) or ts (TypeScript).")
    ] = "python",
    strict_readers: Annotated[
        bool | None,
        typer.Option(
            "--strict-readers/--tolerant-readers",
            help="Python: clients reject unknown members of what they read (default: as "
            "recorded in OUT, else tolerant).",
        ),
    ] = None,
) -> None:
    """Generate typed bindings from a contract (codegen-time dependencies needed)."""
    cli = _tool("codegen.cli")
    code = cli.codegen_command(contract_dir, out, check, lang=lang, strict_readers=strict_readers)
    raise typer.Exit(code)


@app.command()
def check(contract_dir: ContractDir) -> None:
    """Meta-check a contract without generating (problems as file: /pointer: message, exit 2)."""
    raise typer.Exit(_tool("codegen.tools").check_command(contract_dir))


@export_app.command("asyncapi")
def export_asyncapi(
    contract_dir: ContractDir,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output file (default: stdout).")
    ] = None,
    include_builtins: Annotated[
        bool, typer.Option("--include-builtins", help="Also describe the mesh/* protocol.")
    ] = False,
    builtins: Annotated[
        Path | None,
        typer.Option(
            "--builtins", help="Built-in contract directory (default: the packaged contract/mesh)."
        ),
    ] = None,
    api_version: Annotated[
        str, typer.Option("--api-version", help="info.version of the document.")
    ] = "0.0.0",
) -> None:
    """Export a contract as an AsyncAPI 3.0.0 document (JSON)."""
    tools = _tool("codegen.tools")
    raise typer.Exit(
        tools.export_asyncapi_command(
            contract_dir,
            out=out,
            include_builtins=include_builtins,
            builtins_dir=builtins,
            api_version=api_version,
        )
    )


@contract_app.command("diff")
def contract_diff(
    old: Annotated[str, typer.Argument(help="Old contract: a directory, REV or REV:PATH (git).")],
    new: Annotated[Path, typer.Argument(help="New contract directory.")],
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="backward: old clients vs new server; forward: new clients vs old server; "
            "full: both.",
        ),
    ] = "backward",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report.")] = False,
    strict_clients: Annotated[
        bool,
        typer.Option(
            "--strict-clients",
            help="Client readers reject unknown members too (generated with --strict-readers).",
        ),
    ] = False,
) -> None:
    """List every change between two contracts; exit 1 if one breaks the mode."""
    tools = _tool("codegen.tools")
    raise typer.Exit(
        tools.diff_command(old, new, mode=mode, as_json=as_json, strict_clients=strict_clients)
    )


@contract_app.command("fingerprint")
def contract_fingerprint(
    contract_dir: ContractDir,
    normalized: Annotated[
        bool, typer.Option("--normalized", help="Print the normal form that is hashed.")
    ] = False,
) -> None:
    """Print the contract fingerprint (sha256 of its wire-relevant normal form)."""
    raise typer.Exit(
        _tool("codegen.tools").fingerprint_command(contract_dir, normalized=normalized)
    )


def main() -> None:
    """Console-script entry point (``mesh``)."""
    app()
