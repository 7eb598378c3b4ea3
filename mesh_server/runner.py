"""How ``mesh serve`` runs a server: signals, graceful shutdown, and ``--reload``.

* :func:`serve_until_signalled` serves until SIGTERM or SIGINT, then shuts down with
  :meth:`MeshServer.close <mesh_server.MeshServer.close>` (bounded by its ``shutdown_timeout``)
  and returns, so the process exits 0. SIGTERM and SIGINT mean the same (process managers and
  orchestrators send SIGTERM). A second signal during the shutdown ends the process at once with
  :data:`FORCED_EXIT_CODE`.
* :func:`reload_forever` (``mesh serve --reload``, development only) runs ``mesh serve`` in a
  child process and restarts it whenever a ``.py`` file under the application's directory
  changes (watchfiles, extra ``mesh-py[reload]``). The child is stopped with SIGTERM, so each
  restart is a graceful shutdown.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from mesh_server.logs import FIELD_INSTANCE_ID
from mesh_server.server import MeshServer

__all__ = ["FORCED_EXIT_CODE", "app_directory", "reload_forever", "serve_until_signalled"]

FORCED_EXIT_CODE: Final = 1
"""Exit status when a second signal cuts a graceful shutdown short."""

_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

_log = logging.getLogger("mesh_server.runner")


async def serve_until_signalled(server: MeshServer) -> None:
    """Start ``server``, serve until SIGTERM/SIGINT or :meth:`~MeshServer.close`, then close it.

    Must run in the main thread (signal handlers). The first signal starts the graceful
    shutdown; a second one exits the process immediately with :data:`FORCED_EXIT_CODE`.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            _log.warning("%s again: exiting without finishing the shutdown", signum.name)
            logging.shutdown()
            os._exit(FORCED_EXIT_CODE)
        _log.info(
            "%s received: shutting down (at most %.1f s; send it again to force)",
            signum.name,
            server.shutdown_timeout,
            extra={FIELD_INSTANCE_ID: server.instance_id},
        )
        stop.set()

    for signum in _SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await server.start()
        serving = asyncio.ensure_future(server.serve_forever())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            await server.close()
            await serving
    finally:
        for signum in _SIGNALS:
            loop.remove_signal_handler(signum)


def app_directory(target: str) -> Path:
    """The directory ``--reload`` watches: where the module of ``module:attr`` lives.

    For a module inside a package it is the top-level package's parent directory, so edits
    anywhere in the application's package restart the server.

    Raises:
        ValueError: The module cannot be found.
    """
    module_name = target.partition(":")[0]
    top = module_name.partition(".")[0]
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        raise ValueError(f"cannot find module {module_name!r}")
    origin = Path(spec.origin).resolve()
    # A package's origin is its __init__.py: watch the directory that holds the package.
    return origin.parent.parent if spec.submodule_search_locations else origin.parent


def reload_forever(target: str, argv: Sequence[str], *, stop_timeout: float) -> int:
    """Run ``python -m mesh_server ARGV`` in a child, restarting it when ``.py`` files change.

    The child runs in its own session, so a Ctrl-C in the terminal reaches only this process,
    which then stops the child with one SIGTERM (a second signal would force the child out,
    see :func:`serve_until_signalled`). SIGTERM to this process does the same.

    Args:
        target: The ``module:attr`` served (its directory is watched).
        argv: The child's command line after the program name (``serve TARGET …``).
        stop_timeout: Seconds a child may take to stop before it is killed.

    Returns:
        The number of restarts (after this process was interrupted).

    Raises:
        RuntimeError: watchfiles is not installed.
        ValueError: The module of ``target`` cannot be found.
    """
    try:
        import watchfiles
    except ImportError:
        raise RuntimeError(
            "mesh serve --reload needs watchfiles: pip install 'mesh-py[reload]'"
        ) from None
    directory = app_directory(target)
    command = [sys.executable, "-m", "mesh_server", *argv]
    _log.info("reloading on changes to .py files under %s", directory)
    signal.signal(signal.SIGTERM, _interrupt)
    restarts = 0
    child = _start(command)
    try:
        # SIGINT and SIGTERM (through _interrupt) end the watch, or whatever step runs then.
        for changes in watchfiles.watch(
            directory, watch_filter=watchfiles.PythonFilter(), raise_interrupt=True
        ):
            paths = sorted({path for _, path in changes})
            _log.info("change detected in %s: restarting", ", ".join(paths[:5]))
            _stop(child, stop_timeout)
            child = _start(command)
            restarts += 1
    except KeyboardInterrupt:
        _log.info("stopping the server")
    finally:
        _stop(child, stop_timeout)
    return restarts


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _start(command: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, start_new_session=True)


def _stop(child: subprocess.Popen[bytes], timeout: float) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        _log.warning("the server did not stop within %.1f s: killing it", timeout)
        child.kill()
        child.wait()
    except KeyboardInterrupt:
        # A second Ctrl-C while the server shuts down: force it, as without --reload.
        child.kill()
        child.wait()
        raise
