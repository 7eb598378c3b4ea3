"""The tic-tac-toe example (examples/tictactoe): its tour, codegen drift, and moves racing on two
instances (memory hub and a private Redis)."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from codegen.cli import _existing, compare_trees, generate
from examples.tictactoe import rules
from examples.tictactoe.client import GAME, run_tour
from examples.tictactoe.generated import TicTacToeClient
from examples.tictactoe.generated.models import (
    CreateGameRequest,
    GameState,
    JoinGameRequest,
    MakeMoveRequest,
    MakeMoveResponse,
    MoveMade,
    Player,
)
from examples.tictactoe.server import build_server
from mesh_sdk import LocalValidationError, MeshClient, MeshError, ValidationError
from mesh_server import MeshServer
from mesh_server.backends.memory import MemoryBackend, MemoryHub
from tests.integration.features_cluster import FAST
from tests.support.timing import TIMEOUT, eventually, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_DIR = ROOT / "examples/tictactoe/contract"
GENERATED = ROOT / "examples/tictactoe/generated"

GAMES = 12
"""Games played by the two racing players."""
SEED = 20261204
"""Seed of the cells the racing players pick (reproducible runs)."""


async def test_tour_plays_a_full_game_with_two_players_and_a_spectator() -> None:
    async with build_server() as server:
        lines = await wait_for(run_tour(server.url), timeout=TIMEOUT * 6)
        created = next(line for line in lines if line.startswith("alice created game "))
        game = created.split()[3].rstrip(":")
        value, version = await server.get_record(f"game:{game}")
    text = "\n".join(lines)
    state = GameState.model_validate(value)
    # The server's record holds the whole game, each move once, in order.
    assert [(move.mark, move.cell) for move in state.moves] == [
        ("X" if index % 2 == 0 else "O", cell) for index, cell in enumerate(GAME)
    ]
    assert (state.status, state.winner, version) == ("won", "X", 2 + len(GAME))
    assert f"alice created game {game}: CreateGameResponse(mark='X')" in lines
    assert f"carol watches game:{game}: v1 waiting" in lines
    assert f"carol sees table:{game}: present ['alice']" in lines
    assert "carol: presence join bob" in lines
    assert "carol: presence leave bob" in lines
    # The hover record: written by its player, refused to the other one.
    assert "carol: alice hovers cell 0" in lines
    assert f'bob writes hover:{game}:X -> EFORBIDDEN: Record "hover:{game}:X"' in text
    assert "  alice hovers taken cell 1 -> EFORBIDDEN" in lines
    # Typed responses; illegal moves refused with their reason, nothing written.
    assert "X plays 0: move #1, v3, playing" in lines
    assert "X plays 2: move #7, v9, won" in lines
    assert "  refused cell 2: IllegalMoveError, not-your-turn" in lines
    assert "  refused cell 1: IllegalMoveError, cell-taken" in lines
    assert "bob plays after the end: EFORBIDDEN game-over" in lines
    # The spectator saw the final record and every move on the channel, once each.
    board = lines.index("  X O X")
    assert lines[board : board + 4] == ["  X O X", "  O X .", "  X . O", "carol: v9 won, winner X"]
    seen = [(move.seq, move.mark, move.cell) for move in state.moves]
    assert f"carol saw moves {seen}" in lines
    # The contract refuses an invalid request locally and a record value on the server; both
    # point into the payload (JSON pointers).
    local = 'local: game/move -> EVALIDATION: Invalid payload for "game/move" (refused locally'
    assert any(line.startswith(local) for line in lines)
    remote = f'server: merge into hover:{game}:X -> EVALIDATION: Invalid value for record "Hover"'
    assert remote in lines
    assert lines.count("  /cell: Input should be less than or equal to 8") == 2


async def test_the_contract_validates_requests_at_both_ends() -> None:
    async with build_server() as server, MeshClient(server.url) as untyped:
        request = MakeMoveRequest(gameId="0123456789ab", cell=4)
        request.cell = 9  # models do not validate assignments
        async with TicTacToeClient(MeshClient(server.url)) as typed:
            # Client side: the facade refuses it before sending.
            with pytest.raises(LocalValidationError) as local:
                await typed.commands.make_move(request)
        # Server side: a client without the contract sends it; refused before the handler runs.
        with pytest.raises(ValidationError) as remote:
            await untyped.command("game/move", request.model_dump())
    problem = {"path": "/cell", "message": "Input should be less than or equal to 8"}
    assert local.value.details == remote.value.details == [problem]
    assert not isinstance(remote.value, LocalValidationError)


def test_generated_package_has_not_drifted_from_contract() -> None:
    assert compare_trees(generate(CONTRACT_DIR, GENERATED), _existing(GENERATED)) == []


async def test_main_plays_the_tour_and_exits_cleanly() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.tictactoe",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT * 6)
    assert proc.returncode == 0, stderr.decode()
    out = stdout.decode()
    assert "X plays 2: move #7, v9, won" in out
    assert "EVALIDATION" in out
    assert out.rstrip().endswith("tic-tac-toe example finished")


# ---------------------------------------------------------------------- two racing instances


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def instances(request: pytest.FixtureRequest) -> AsyncIterator[tuple[MeshServer, ...]]:
    """Two started tic-tac-toe servers sharing one store (a memory hub, or a private Redis)."""
    hub = MemoryHub()
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    async with AsyncExitStack() as stack:
        servers = []
        for _ in range(2):
            store: dict[str, Any] = (
                {"backend": MemoryBackend("mesh:", hub=hub)}
                if redis_url is None
                else {"redis_url": redis_url}
            )
            servers.append(await stack.enter_async_context(build_server(**FAST, **store)))
        yield tuple(servers)


async def _race(
    players: dict[rules.Mark, TicTacToeClient], game: str, cells: dict[rules.Mark, list[int]]
) -> list[tuple[rules.Mark, int, MakeMoveResponse | MeshError]]:
    """Send every player's moves at the same moment; return each move's answer."""

    async def move(mark: rules.Mark, cell: int) -> tuple[rules.Mark, int, Any]:
        request = MakeMoveRequest(gameId=game, cell=cell)
        try:
            return mark, cell, await players[mark].commands.make_move(request)
        except MeshError as exc:
            return mark, cell, exc

    sends = [move(mark, cell) for mark, picked in cells.items() for cell in picked]
    return list(await asyncio.gather(*sends))


async def test_simultaneous_moves_through_two_instances_are_applied_exactly_once(
    instances: tuple[MeshServer, MeshServer],
) -> None:
    one, two = instances
    picker = random.Random(SEED)
    rounds = refused = 0
    async with AsyncExitStack() as stack:
        meshes = [
            await stack.enter_async_context(MeshClient(server.url))
            for server in (one, two, one, two)
        ]
        x, o, *spectators = (TicTacToeClient(mesh) for mesh in meshes)
        players: dict[rules.Mark, TicTacToeClient] = {"X": x, "O": o}
        for _ in range(GAMES):
            game = (await x.commands.create_game(CreateGameRequest(name="x"))).gameId
            watched = []
            for spectator in spectators:
                record = await spectator.records.game(game=game)
                channel = await spectator.channels.moves(game=game)
                watched.append((record, channel, channel.messages()))
            await o.commands.join_game(JoinGameRequest(gameId=game, name="o"))
            applied: dict[int, tuple[rules.Mark, int, int]] = {}
            state = GameState.model_validate((await one.get_record(f"game:{game}"))[0])
            while state.status == "playing":
                # Both players at once, through different instances: one cell both want
                # (at most one gets it) and one more each.
                free = [cell for cell, mark in enumerate(state.board) if mark is None]
                shared, *others = picker.sample(free, min(3, len(free)))
                cells: dict[rules.Mark, list[int]] = {
                    "X": [shared, *others[:1]],
                    "O": [shared, *others[1:]],
                }
                answers = await _race(players, game, cells)
                rounds += 1
                shared_wins = 0
                for mark, cell, answer in answers:
                    if isinstance(answer, MeshError):
                        reason = rules.refusal(answer)
                        assert reason in ("not-your-turn", "cell-taken", "game-over"), answer
                        refused += 1
                    else:
                        assert answer.seq not in applied  # no move applied twice
                        applied[answer.seq] = (mark, cell, answer.version)
                        shared_wins += cell == shared
                assert shared_wins <= 1  # the illegal one of two moves onto one cell is refused
                value, version = await two.get_record(f"game:{game}")
                state = GameState.model_validate(value)
            # Every acknowledged move is in the record exactly once, and nothing else is.
            assert [(m.seq, m.mark, m.cell) for m in state.moves] == [
                (seq, mark, cell) for seq, (mark, cell, _) in sorted(applied.items())
            ]
            # Each move committed its own version (create = 1, join = 2).
            assert sorted(v for _, _, v in applied.values()) == list(range(3, version + 1))
            # Replaying the acknowledged moves through the rules gives the stored game.
            replay = rules.join(rules.new_game(state.players.X), _player(state, "O"))
            for move in state.moves:
                players_of = {"X": state.players.X, "O": _player(state, "O")}
                replay = rules.play(replay, players_of[move.mark].connectionId, move.cell)
            assert replay == state
            assert await one.get_record(f"game:{game}") == (value, version)
            for record, channel, messages in watched:
                await eventually(lambda record=record, version=version: record.version == version)
                assert record.value == state
                seen = [await wait_for(anext(messages)) for _ in state.moves]
                assert sorted(m.seq for m in seen) == [m.seq for m in state.moves]
                assert {m.seq: m for m in seen}[len(state.moves)] == MoveMade(
                    seq=len(state.moves),
                    mark=state.moves[-1].mark,
                    cell=state.moves[-1].cell,
                    status=state.status,
                    winner=state.winner,
                )
                await record.unsubscribe()
                await channel.unsubscribe()
    # Every round refused at least one move: two moves onto one cell cannot both be legal.
    assert refused >= rounds >= 2 * GAMES


def _player(state: GameState, mark: rules.Mark) -> Player:
    player = state.players.X if mark == "X" else state.players.O
    if player is None:
        raise AssertionError(f"the game has no {mark}")
    return player
