"""The tic-tac-toe server, written against the generated typed server facade.

``TicTacToeServer(server)`` binds the contract to the server: every request is validated before
its handler runs (the handler gets the typed model and must return the typed response; mypy
checks both), every response, channel message and record value before it leaves, and the server
refuses to start while a contract command has no handler.

* ``game/create`` stores a new ``game:{game}`` record (a compare-and-set from version 0, so a
  colliding id is refused, never overwritten); ``game/join`` and ``game/move`` change it through
  ``app.records.game.update`` (:meth:`~mesh_server.MeshServer.update_record`), an atomic
  read-modify-write: two moves sent at the same moment through two instances are applied one
  after the other, each exactly once, and the second is judged by the rules against the state
  the first produced. A move the rules forbid raises
  :class:`~examples.tictactoe.rules.IllegalMoveError`, which the caller gets as ``EFORBIDDEN``
  with ``details = {"reason": ...}``; nothing is written.
* Every applied move is published on the spectator channel ``moves:{game}``.
* Players are put in the presence room ``table:{game}`` (joins and leaves reach spectators).
* ``hover:{game}:{mark}`` is the one record clients write: only the player holding ``mark`` may
  write it, and only to point at a free cell (a guard that sees the value being written).
"""

from __future__ import annotations

import secrets
from typing import Any

from examples.tictactoe import rules
from examples.tictactoe.generated.models import (
    CreateGameRequest,
    CreateGameResponse,
    JoinGameRequest,
    JoinGameResponse,
    MakeMoveRequest,
    MakeMoveResponse,
    MoveMade,
    Player,
)
from examples.tictactoe.generated.server import TicTacToeServer
from mesh_server import Context, MeshServer
from mesh_server.exposure import READ_ACCESS
from mesh_server.features import ConnectionLike

__all__ = ["build_server"]


def build_server(port: int = 0, **options: Any) -> MeshServer:
    """Return the tic-tac-toe server (not started) on ``port`` (0: a free port).

    Args:
        port: TCP port.
        **options: Other :class:`~mesh_server.MeshServer` options, e.g. ``redis_url`` to run
            several instances on one Redis.
    """
    server = MeshServer(port=port, **options)
    app = TicTacToeServer(server)

    @app.commands.create_game
    async def create(
        ctx: Context[CreateGameRequest], request: CreateGameRequest
    ) -> CreateGameResponse:
        game = secrets.token_hex(6)
        state = rules.new_game(Player(connectionId=ctx.connection.id, name=request.name))
        await app.records.game.publish(game=game, value=state, expected_version=0)
        await server.add_to_room(rules.table(game), ctx.connection)
        return CreateGameResponse(gameId=game, mark="X")

    @app.commands.join_game
    async def join(ctx: Context[JoinGameRequest], request: JoinGameRequest) -> JoinGameResponse:
        player = Player(connectionId=ctx.connection.id, name=request.name)
        await app.records.game.update(
            game=request.gameId, fn=lambda state: rules.join(state, player)
        )
        await server.add_to_room(rules.table(request.gameId), ctx.connection)
        return JoinGameResponse(gameId=request.gameId, mark="O")

    @app.commands.make_move
    async def play(ctx: Context[MakeMoveRequest], request: MakeMoveRequest) -> MakeMoveResponse:
        state, version = await app.records.game.update(
            game=request.gameId,
            fn=lambda state: rules.play(state, ctx.connection.id, request.cell),
        )
        move = state.moves[-1]  # the committed value is the one this move's rule returned
        message = MoveMade(
            seq=move.seq, mark=move.mark, cell=move.cell, status=state.status, winner=state.winner
        )
        await app.channels.moves.publish(game=request.gameId, message=message)
        return MakeMoveResponse(seq=move.seq, version=version, status=state.status)

    async def may_hover(connection: ConnectionLike, record_id: str, value: Any) -> bool:
        if value is READ_ACCESS:  # everyone may watch the players' pointers
            return True
        _, game, mark = record_id.split(":")
        state, _ = await app.records.game.get(game=game)
        player = None if state is None else state.players.X if mark == "X" else state.players.O
        if state is None or player is None or player.connectionId != connection.id:
            return False
        # The value is checked against the contract after the guard: only judge a valid cell.
        cell = value.get("cell") if isinstance(value, dict) else None
        return not (type(cell) is int and 0 <= cell < 9 and state.board[cell] is not None)

    # Expose exactly what the contract declares (its anchored patterns; hover:{game}:{mark} is
    # writable because the contract says x-mesh-writable).
    app.channels.moves.expose()
    app.records.game.expose()
    app.records.hover.expose(guard=may_hover)
    server.track_presence(rules.TABLE_PATTERN)
    return server
