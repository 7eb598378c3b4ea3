"""The rules of the tic-tac-toe example (examples/tictactoe/rules.py): every refusal, win, draw."""

from __future__ import annotations

import pytest

from examples.tictactoe import rules
from examples.tictactoe.generated.models import GameState, Player
from mesh_sdk.protocol.errors import ForbiddenError, MeshError, error_from_wire

PLAYER_X = Player(connectionId="conn-x", name="x")
PLAYER_O = Player(connectionId="conn-o", name="o")


def started() -> GameState:
    return rules.join(rules.new_game(PLAYER_X), PLAYER_O)


def played(*cells: int) -> GameState:
    state = started()
    for index, cell in enumerate(cells):
        state = rules.play(state, (PLAYER_X if index % 2 == 0 else PLAYER_O).connectionId, cell)
    return state


def reason_of(exc: pytest.ExceptionInfo[rules.IllegalMoveError]) -> rules.Reason:
    return exc.value.reason


def test_a_new_game_waits_for_o_and_joining_starts_it() -> None:
    game = rules.new_game(PLAYER_X)
    assert (game.status, game.turn, game.board, game.moves) == ("waiting", "X", [None] * 9, [])
    assert game.players.O is None
    joined = rules.join(game, PLAYER_O)
    assert (joined.status, joined.players.O) == ("playing", PLAYER_O)
    assert game.players.O is None  # the rules never mutate their input


@pytest.mark.parametrize(
    ("state", "player", "reason"),
    [
        (None, PLAYER_O, "no-such-game"),
        (rules.new_game(PLAYER_X), PLAYER_X, "already-joined"),
        (
            rules.join(rules.new_game(PLAYER_X), PLAYER_O),
            Player(connectionId="conn-3", name="z"),
            "game-full",
        ),
    ],
)
def test_join_refusals(state: GameState | None, player: Player, reason: rules.Reason) -> None:
    with pytest.raises(rules.IllegalMoveError) as exc:
        rules.join(state, player)
    assert reason_of(exc) == reason


@pytest.mark.parametrize(
    ("state", "connection_id", "cell", "reason"),
    [
        (None, "conn-x", 0, "no-such-game"),
        (rules.new_game(PLAYER_X), "conn-x", 0, "waiting-for-opponent"),
        (started(), "conn-3", 0, "not-a-player"),
        (started(), "conn-o", 0, "not-your-turn"),
        (played(4), "conn-o", 4, "cell-taken"),
        (played(0, 3, 1, 4, 2), "conn-o", 5, "game-over"),
    ],
)
def test_move_refusals(
    state: GameState | None, connection_id: str, cell: int, reason: rules.Reason
) -> None:
    with pytest.raises(rules.IllegalMoveError) as exc:
        rules.play(state, connection_id, cell)
    assert reason_of(exc) == reason
    assert exc.value.to_wire() == {
        "error": exc.value.message,
        "code": "EFORBIDDEN",
        "name": "IllegalMoveError",
        "details": {"reason": reason},
    }


def test_moves_alternate_and_are_numbered() -> None:
    state = played(4, 0, 8)
    assert [(m.seq, m.mark, m.cell) for m in state.moves] == [(1, "X", 4), (2, "O", 0), (3, "X", 8)]
    assert (state.turn, state.status, state.winner) == ("O", "playing", None)
    assert rules.render(state.board) == ["O . .", ". X .", ". . X"]


@pytest.mark.parametrize("line", rules.LINES)
def test_every_line_wins(line: tuple[int, int, int]) -> None:
    others = [cell for cell in range(9) if cell not in line]
    # X takes the line; O answers on cells that never complete a line of its own first.
    cells = [line[0], others[0], line[1], others[1], line[2]]
    state = played(*cells)
    assert (state.status, state.winner) == ("won", "X")


def test_a_full_board_without_a_line_is_a_draw() -> None:
    state = played(0, 1, 2, 4, 3, 5, 7, 6, 8)
    assert (state.status, state.winner, None in state.board) == ("draw", None, False)


def test_refusal_reads_the_reason_back_from_the_wire() -> None:
    wire = rules.IllegalMoveError("cell-taken", "Cell 4 is taken.").to_wire()
    error = error_from_wire(wire)
    assert isinstance(error, ForbiddenError)
    assert rules.refusal(error) == "cell-taken"
    assert rules.refusal(ForbiddenError("no", details={"reason": "cell-taken"})) is None
    assert rules.refusal(MeshError("odd", name="IllegalMoveError")) is None
    assert rules.refusal(ForbiddenError("odd", name="IllegalMoveError", details=["x"])) is None
