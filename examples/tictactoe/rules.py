"""The rules of tic-tac-toe over the contract's models: pure functions, no I/O.

Each rule takes the current :class:`GameState` (``None``: no such game) and returns the next one,
or raises :class:`IllegalMoveError`. The server runs them inside an atomic read-modify-write of
the game record, which may run a rule more than once (on a conflicting write it runs again on the
newer state), so they only compute. The client uses :func:`refusal` and :func:`render`; both
sides name a game's presence room with :func:`table` (presence is not part of a contract).
"""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

from examples.tictactoe.generated.models import GameState, Move, Player, Players
from mesh_sdk.protocol.errors import ForbiddenError, MeshError

__all__ = [
    "LINES",
    "TABLE_PATTERN",
    "IllegalMoveError",
    "Mark",
    "Reason",
    "join",
    "new_game",
    "play",
    "refusal",
    "render",
    "table",
]

Mark = Literal["X", "O"]
Reason = Literal[
    "no-such-game",
    "already-joined",
    "game-full",
    "not-a-player",
    "waiting-for-opponent",
    "game-over",
    "not-your-turn",
    "cell-taken",
]
"""Why the rules refused a request (``details["reason"]`` of :class:`IllegalMoveError`)."""

LINES: Final = (
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
)
"""The eight winning lines of the board (cells row by row)."""
TABLE_PATTERN: Final = re.compile(r"^table:[0-9a-f]{12}$")
"""The presence rooms of the games (:func:`table`)."""


def table(game_id: str) -> str:
    """Return the presence room of a game: its players are present there."""
    return f"table:{game_id}"


class IllegalMoveError(ForbiddenError):
    """A join or move the rules forbid: ``EFORBIDDEN`` named ``IllegalMoveError``.

    On the wire it is a :class:`ForbiddenError` whose ``name`` is ``IllegalMoveError`` and whose
    ``details`` are ``{"reason": Reason}``; clients read it back with :func:`refusal`.
    """

    default_name = "IllegalMoveError"

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason: Reason = reason


def refusal(error: MeshError) -> Reason | None:
    """Return the rule a server error reports (``None``: not an :class:`IllegalMoveError`)."""
    if not isinstance(error, ForbiddenError) or error.name != IllegalMoveError.default_name:
        return None
    reason = error.details.get("reason") if isinstance(error.details, dict) else None
    return reason if reason in get_args(Reason) else None


def new_game(player: Player) -> GameState:
    """Return a game that ``player`` opened as X, waiting for O."""
    return GameState(
        players=Players(X=player),
        board=[None] * 9,
        turn="X",
        status="waiting",
        winner=None,
        moves=[],
    )


def join(state: GameState | None, player: Player) -> GameState:
    """Return ``state`` with ``player`` as O: the game starts, X to move.

    Raises:
        IllegalMoveError: No such game, the player opened it, or it already has two players.
    """
    if state is None:
        raise IllegalMoveError("no-such-game", "No such game.")
    if state.players.X.connectionId == player.connectionId:
        raise IllegalMoveError("already-joined", "You opened this game: you are X.")
    if state.players.O is not None:
        raise IllegalMoveError("game-full", "This game already has two players.")
    players = Players(X=state.players.X, O=player)
    return state.model_copy(update={"players": players, "status": "playing"})


def play(state: GameState | None, connection_id: str, cell: int) -> GameState:
    """Return ``state`` after the player on ``connection_id`` marked ``cell``.

    Raises:
        IllegalMoveError: No such game, not a player of it, no opponent yet, the game is over,
            not the player's turn, or the cell is taken (checked in this order).
    """
    if state is None:
        raise IllegalMoveError("no-such-game", "No such game.")
    mark = _mark_of(state, connection_id)
    if state.status == "waiting":
        raise IllegalMoveError("waiting-for-opponent", "Wait for a second player to join.")
    if state.status != "playing":
        raise IllegalMoveError("game-over", "The game is over.")
    if state.turn != mark:
        raise IllegalMoveError("not-your-turn", f"It is {state.turn}'s turn.")
    if state.board[cell] is not None:
        raise IllegalMoveError("cell-taken", f"Cell {cell} is taken.")
    board = list(state.board)
    board[cell] = mark
    winner = _winner(board)
    status = "won" if winner is not None else "draw" if None not in board else "playing"
    move = Move(seq=len(state.moves) + 1, mark=mark, cell=cell)
    return state.model_copy(
        update={
            "board": board,
            "moves": [*state.moves, move],
            "turn": "O" if mark == "X" else "X",
            "status": status,
            "winner": winner,
        }
    )


def render(board: list[Mark | None]) -> list[str]:
    """Return the board as three lines such as ``X . O``."""
    cells = [mark or "." for mark in board]
    return [" ".join(cells[row : row + 3]) for row in (0, 3, 6)]


def _mark_of(state: GameState, connection_id: str) -> Mark:
    if state.players.X.connectionId == connection_id:
        return "X"
    if state.players.O is not None and state.players.O.connectionId == connection_id:
        return "O"
    raise IllegalMoveError("not-a-player", "You are not a player of this game.")


def _winner(board: list[Mark | None]) -> Mark | None:
    for a, b, c in LINES:
        mark = board[a]
        if mark is not None and mark == board[b] == board[c]:
            return mark
    return None
