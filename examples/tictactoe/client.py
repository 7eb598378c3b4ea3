"""A client tour of the tic-tac-toe example through the generated typed facade.

Two players (alice as X, bob as O) play a full game while a spectator (carol) watches the game
record, the spectator channel, the players' hover records and the presence of the game's room.
Commands, channels and records go through the generated facade (:class:`TicTacToeClient`), which
binds the contract to the client it wraps: commands take and return models, a move the rules
forbid comes back as ``EFORBIDDEN`` named ``IllegalMoveError`` with its reason, a request that
violates the contract is refused before it is sent (:class:`~mesh_sdk.LocalValidationError`), and
a record value the server rejects comes back as ``EVALIDATION`` with pointers into the value.
Presence is not part of a contract: the spectator subscribes to it on the plain client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from examples.tictactoe import rules
from examples.tictactoe.generated import TicTacToeClient
from examples.tictactoe.generated.models import (
    CreateGameRequest,
    Hover,
    JoinGameRequest,
    MakeMoveRequest,
)
from mesh_sdk import ForbiddenError, LocalValidationError, MeshClient, MeshError

__all__ = ["GAME", "run_tour"]

GAME = (0, 1, 4, 8, 6, 3, 2)
"""The cells played in turn, X first: X forks at 6 and wins on the diagonal 2-4-6."""
TIMEOUT = 5.0
"""Seconds the tour waits for a push that should arrive promptly."""

T = TypeVar("T")


async def _next(iterator: AsyncIterator[T]) -> T:
    return await asyncio.wait_for(anext(iterator), TIMEOUT)


async def _until(iterator: AsyncIterator[T], done: Callable[[T], bool]) -> T:
    """Return the first item of ``iterator`` for which ``done`` is true."""

    async def scan() -> T:
        async for item in iterator:
            if done(item):
                return item
        raise RuntimeError("the subscription ended")

    return await asyncio.wait_for(scan(), TIMEOUT)


def _held(value: T | None) -> T:
    """Return a record value that must exist (the tour never deletes one)."""
    if value is None:
        raise RuntimeError("the record is absent")
    return value


async def run_tour(url: str) -> list[str]:
    """Play one game against the tic-tac-toe server at ``url``; return the lines it printed."""
    lines: list[str] = []
    say = lines.append
    meshes = {name: MeshClient(url) for name in ("alice", "bob", "carol")}
    try:
        alice, bob, carol = apps = [TicTacToeClient(mesh) for mesh in meshes.values()]
        for (name, mesh), app in zip(meshes.items(), apps, strict=True):
            await app.connect()  # connects and compares the contract fingerprints
            say(f"{name:5} connected as {mesh.connection_id}")
        names = {mesh.connection_id: name for name, mesh in meshes.items()}

        say("-- typed commands: game/create, game/join")
        created = await alice.commands.create_game(CreateGameRequest(name="alice"))
        game = created.gameId
        say(f"alice created game {game}: {type(created).__name__}(mark={created.mark!r})")
        record = await carol.records.game(game=game)
        states = record.changes()
        first = await _next(states)  # every consumer starts from the state held
        say(f"carol watches {record.record_id}: v{first.version} {_held(first.value).status}")
        moves = await carol.channels.moves(game=game)
        played = moves.messages()
        presence = await meshes["carol"].subscribe_presence(rules.table(game))
        updates = presence.updates()
        say(f"carol sees {rules.table(game)}: present {sorted(names[i] for i in presence.present)}")
        joined = await bob.commands.join_game(JoinGameRequest(gameId=game, name="bob"))
        say(f"bob joined as {joined.mark}")
        update = await _next(updates)
        say(f"carol: presence {update.type} {names[update.connection_id]}")

        say("-- hover: a writable record only its player may write")
        hover = await alice.records.hover(game=game, mark="X")
        watched = (await carol.records.hover(game=game, mark="X")).changes()
        await _next(watched)
        await hover.update(Hover(cell=GAME[0]))
        say(f"carol: alice hovers cell {_held((await _next(watched)).value).cell}")
        try:
            await (await bob.records.hover(game=game, mark="X")).update(Hover(cell=5))
        except ForbiddenError as exc:
            say(f"bob writes {hover.record_id} -> {exc.code}: {exc.message}")

        say("-- moves: each one an atomic read-modify-write of the game record")
        players = {"X": alice, "O": bob}
        for index, cell in enumerate(GAME):
            mark: rules.Mark = "X" if index % 2 == 0 else "O"
            reply = await players[mark].commands.make_move(MakeMoveRequest(gameId=game, cell=cell))
            say(f"{mark} plays {cell}: move #{reply.seq}, v{reply.version}, {reply.status}")
            if index == 1:  # out of turn, and onto a taken cell: refused, nothing written
                for player, request in (
                    (bob, MakeMoveRequest(gameId=game, cell=2)),
                    (alice, MakeMoveRequest(gameId=game, cell=cell)),
                ):
                    try:
                        await player.commands.make_move(request)
                    except MeshError as exc:
                        say(f"  refused cell {request.cell}: {exc.name}, {rules.refusal(exc)}")
                try:  # the hover guard sees the value: only free cells
                    await hover.update(Hover(cell=cell))
                except ForbiddenError as exc:
                    say(f"  alice hovers taken cell {cell} -> {exc.code}")
        change = await _until(states, lambda change: change.version == reply.version)
        final = _held(change.value)
        for row in rules.render(final.board):
            say(f"  {row}")
        say(f"carol: v{change.version} {final.status}, winner {final.winner}")
        seen = [await _next(played) for _ in GAME]
        say(f"carol saw moves {[(m.seq, m.mark, m.cell) for m in seen]}")
        try:
            await bob.commands.make_move(MakeMoveRequest(gameId=game, cell=5))
        except MeshError as exc:
            say(f"bob plays after the end: {exc.code} {rules.refusal(exc)}")

        say("-- validation at both ends")
        request = MakeMoveRequest(gameId=game, cell=4)
        request.cell = 9  # models do not validate assignments; the facade still does
        try:
            await bob.commands.make_move(request)
        except LocalValidationError as exc:
            say(f"local: game/move -> {exc.code}: {exc.message}")
            for problem in exc.details or []:
                say(f"  {problem['path']}: {problem['message']}")
        try:
            # Partial merge values are checked by the server, against the merged value.
            await hover.update({"cell": 42}, "merge")
        except MeshError as exc:
            say(f"server: merge into {hover.record_id} -> {exc.code}: {exc.message}")
            for problem in exc.details or []:
                say(f"  {problem['path']}: {problem['message']}")

        say("-- presence: bob leaves")
        await bob.close()
        update = await _until(updates, lambda update: update.type == "leave")
        say(f"carol: presence {update.type} {names[update.connection_id]}")
    finally:
        for mesh in meshes.values():
            await mesh.close()
    return lines
