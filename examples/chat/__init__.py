"""A contract-first chat example: typed commands, channels and records generated from ``contract/``.

``contract/`` is the JSON Schema application contract, ``generated/`` its codegen output
(``mesh codegen examples/chat/contract --out examples/chat/generated``), ``server.py`` the
server and ``client.py`` a tour through the typed facade. Run it with ``python -m examples.chat``.
"""
