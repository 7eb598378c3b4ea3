"""A contract-first tic-tac-toe: typed commands, a spectator channel and records from ``contract/``.

``contract/`` is the JSON Schema application contract (3 commands, the spectator channel
``moves:{game}``, the server-written record ``game:{game}`` and the player-written record
``hover:{game}:{mark}``), ``generated/`` its codegen output (``mesh codegen
examples/tictactoe/contract --out examples/tictactoe/generated``), ``rules.py`` the game as pure
functions, ``server.py`` the server (moves are atomic read-modify-writes of the game record, so
several instances on one Redis never lose one) and ``client.py`` a tour through the typed facade:
two players and a spectator. Run it with ``python -m examples.tictactoe``.
"""
