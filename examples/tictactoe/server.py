"""The tic-tac-toe server: the contract checks every request, response, message and record value.

* ``game/create`` stores a new ``game:{game}`` record (a compare-and-set from version 0, so a
  colliding id is refused, never overwritten); ``game/join`` and ``game/move`` change it through
  :meth:`~mesh_server.MeshServer.update_record`, an atomic read-modify-write: two moves sent at
  the same moment through two instances are applied one after the other, each exactly once, and
  the second is judged by the rules against the state the first produced. A move the rules forbid
  raises :class:`~examples.tictactoe.rules.IllegalMoveError`, which the caller gets as
  ``EFORBIDDEN`` with ``details = {"reason": ...}``; nothing is written.
* Every applied move is published on the spectator channel ``moves:{game}``.
* Players are put in the presence room ``table:{game}`` (joins and leaves reach spectators).
* ``hover:{game}:{mark}`` is the one record clients write: only the player holding ``mark`` may
  write it, and only to point at a free cell (a guard that sees the value being written).
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Final

from examples.tictactoe import rules
from examples.tictactoe.generated import CONTRACT
from examples.tictactoe.generated.facade import channel_name_moves, record_id_game
from examples.tictactoe.generated.models import (
    CreateGameRequest,
    CreateGameResponse,
    GameState,
    JoinGameRequest,
    JoinGameResponse,
    MakeMoveRequest,
    MakeMoveResponse,
    MoveMade,
    Player,
)
from mesh_server import Connection, Context, MeshServer
from mesh_server.exposure import READ_ACCESS

__all__ = ["TABLE_PATTERN", "build_server", "table"]

TABLE_PATTERN: Final = re.compile(r"^table:[0-9a-f]{12}$")
"""The presence rooms of the games (presence is not part of a contract)."""


def table(game_id: str) -> str:
    """Return the presence room of a game."""
    return f"table:{game_id}"


def _state(value: Any) -> GameState | None:
    return None if value is None else GameState.model_validate(value)


def _pattern(spec_template: str, specs: Any) -> re.Pattern[str]:
    return next(spec.pattern for spec in specs if spec.template == spec_template)


def build_server(port: int = 0, **options: Any) -> MeshServer:
    """Return the tic-tac-toe server (not started) on ``port`` (0: a free port).

    Args:
        port: TCP port.
        **options: Other :class:`~mesh_server.MeshServer` options, e.g. ``redis_url`` to run
            several instances on one Redis.
    """
    server = MeshServer(port=port, contract=CONTRACT, **options)

    @server.command("game/create")
    async def create_game(ctx: Context) -> CreateGameResponse:
        request: CreateGameRequest = ctx.payload  # validated and typed by the contract
        game_id = secrets.token_hex(6)
        state = rules.new_game(Player(connectionId=ctx.connection.id, name=request.name))
        record_id = record_id_game(game=game_id)
        await server.publish_record_update(record_id, state, expected_version=0)
        await server.add_to_room(table(game_id), ctx.connection)
        return CreateGameResponse(gameId=game_id, mark="X")

    @server.command("game/join")
    async def join_game(ctx: Context) -> JoinGameResponse:
        request: JoinGameRequest = ctx.payload
        player = Player(connectionId=ctx.connection.id, name=request.name)
        await server.update_record(
            record_id_game(game=request.gameId),
            lambda current: rules.join(_state(current), player),
        )
        await server.add_to_room(table(request.gameId), ctx.connection)
        return JoinGameResponse(gameId=request.gameId, mark="O")

    @server.command("game/move")
    async def make_move(ctx: Context) -> MakeMoveResponse:
        request: MakeMoveRequest = ctx.payload
        value, version = await server.update_record(
            record_id_game(game=request.gameId),
            lambda current: rules.play(_state(current), ctx.connection.id, request.cell),
        )
        state = GameState.model_validate(value)
        move = state.moves[-1]  # the committed value is the one this move's rule returned
        message = MoveMade(
            seq=move.seq, mark=move.mark, cell=move.cell, status=state.status, winner=state.winner
        )
        await server.publish_to_channel(channel_name_moves(game=request.gameId), message)
        return MakeMoveResponse(seq=move.seq, version=version, status=state.status)

    async def may_hover(connection: Connection, record_id: str, value: Any) -> bool:
        if value is READ_ACCESS:  # everyone may watch the players' pointers
            return True
        _, game_id, mark = record_id.split(":")
        state = _state((await server.get_record(record_id_game(game=game_id)))[0])
        player = None if state is None else state.players.X if mark == "X" else state.players.O
        if state is None or player is None or player.connectionId != connection.id:
            return False
        # The value is checked against the contract after the guard: only judge a valid cell.
        cell = value.get("cell") if isinstance(value, dict) else None
        return not (type(cell) is int and 0 <= cell < 9 and state.board[cell] is not None)

    # Expose exactly what the contract declares (its anchored, full-match patterns).
    server.expose_channel(_pattern("moves:{game}", CONTRACT.channels))
    server.expose_record(_pattern("game:{game}", CONTRACT.records))
    server.expose_writable_record(_pattern("hover:{game}:{mark}", CONTRACT.records), may_hover)
    server.track_presence(TABLE_PATTERN)
    return server
