"""``mesh serve --reload``: a changed .py file restarts the server with the new code."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from mesh_server.runner import app_directory
from tests.support.raw_client import RawClient
from tests.support.timing import TIMEOUT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

APP = """
from mesh_server import MeshServer

server = MeshServer(port=0, close_timeout=1.0)

@server.command("version")
async def version(ctx):
    return {version!r}
"""


async def next_start(stderr: asyncio.StreamReader) -> str:
    """Read log lines until a server's startup line; return its URL."""
    while True:
        raw = await stderr.readline()
        assert raw, "mesh serve --reload ended early"
        line = json.loads(raw)
        if line["message"].startswith("Mesh server listening on"):
            return str(line["listen"])


def test_app_directory_of_modules_and_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "solo_app_mod.py").write_text("")
    package = tmp_path / "pkg_app_dir"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "app.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert app_directory("solo_app_mod:server") == tmp_path.resolve()
    assert app_directory("pkg_app_dir.sub.app:server") == tmp_path.resolve()
    with pytest.raises(ValueError, match="cannot find"):
        app_directory("no_such_app_module_here:server")


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
async def test_reload_restarts_on_a_changed_file(tmp_path: Path, stop_with: signal.Signals) -> None:
    app = tmp_path / "reload_app.py"
    app.write_text(APP.format(version="v1"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mesh_server",
        "serve",
        "reload_app:server",
        "--reload",
        "--log-format",
        "json",
        "--shutdown-timeout",
        "2",
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        url = await asyncio.wait_for(next_start(proc.stderr), TIMEOUT * 2)
        async with RawClient.open(url) as client:
            assert await client.call("version", {}) == "v1"
            app.write_text(APP.format(version="v2"))
            # The old child is stopped gracefully: its clients see 1001.
            assert await client.wait_closed(TIMEOUT * 2) == 1001
        url = await asyncio.wait_for(next_start(proc.stderr), TIMEOUT * 2)
        async with RawClient.open(url) as client:
            assert await client.call("version", {}) == "v2"
        # Like Ctrl-C in a terminal: only the parent gets it (the child has its own session)
        # and stops the child with one signal, so that shutdown is graceful too.
        proc.send_signal(stop_with)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT * 2) == 0
        rest = [json.loads(line) for line in (await proc.stderr.read()).splitlines()]
        messages = [line["message"] for line in rest]
        assert "Mesh server closed" in messages
        assert not any("without finishing the shutdown" in m for m in messages)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
