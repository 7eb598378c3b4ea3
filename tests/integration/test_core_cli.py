"""The ``mesh`` CLI and the demo, run as real subprocesses."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import typer

from mesh_server import MeshServer
from mesh_server.cli import load_server
from tests.support.raw_client import RawClient
from tests.support.timing import TIMEOUT

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

APP = """
from mesh_server import MeshServer

server = MeshServer(port=1)

@server.command("echo")
async def echo(ctx):
    return ctx.payload

def factory():
    return server

not_a_server = 42
"""


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "mesh_cli_app_" + os.urandom(4).hex()
    (tmp_path / f"{name}.py").write_text(APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_load_server_variants(app_module: str) -> None:
    server = load_server(f"{app_module}:server")
    assert isinstance(server, MeshServer)
    assert load_server(f"{app_module}:factory") is server
    for bad in ("nocolon", f"{app_module}:missing", f"{app_module}:not_a_server", "no_such_mod:x"):
        with pytest.raises(typer.BadParameter):
            load_server(bad)


def test_configure_overrides_settings() -> None:
    server = MeshServer(port=1)
    server.configure(host="0.0.0.0", port=0, redis_url="redis://127.0.0.1:1/0")
    assert (server.options.host, server.port, server.options.redis_url) == (
        "0.0.0.0",
        0,
        "redis://127.0.0.1:1/0",
    )


@pytest.mark.parametrize("kind", ["websockets", "picows"])
async def test_mesh_serve_subprocess(tmp_path: Path, kind: str) -> None:
    (tmp_path / "cli_app.py").write_text(APP)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mesh_server",
        "serve",
        "cli_app:server",
        "--port",
        "0",
        "--log-level",
        "debug",
        "--transport",
        kind,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        log = ""
        while (
            match := re.search(r"Mesh server listening on ws://127\.0\.0\.1:(\d+)", log)
        ) is None:
            line = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT * 2)
            assert line, log
            log += line.decode()
        assert f"transport={kind} backend=memory contract=none" in log
        async with RawClient.open(f"ws://127.0.0.1:{match[1]}") as client:
            assert await client.call("echo", "via cli") == "via cli"
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT * 2) == 0
        log += (await proc.stderr.read()).decode()
        assert "opened from" in log
        assert "closed (code" in log
        assert "SIGINT received: shutting down" in log
        assert "Mesh server closed" in log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_demo_runs_and_exits_cleanly() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.demo",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT * 6)
    out = stdout.decode()
    assert proc.returncode == 0, stderr.decode()
    for expected in (
        "-- commands",
        "EDEMO (DemoError)",
        "ENOTFOUND",
        "round trip",
        "demo finished",
    ):
        assert expected in out
