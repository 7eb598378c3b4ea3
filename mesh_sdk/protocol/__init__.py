"""The sans-I/O protocol shared by the server and the SDK: the one package both sides import.

* :mod:`~mesh_sdk.protocol.codec` — envelope framing (protocol.md §3);
* :mod:`~mesh_sdk.protocol.errors` — the error hierarchy and wire codes (§4);
* :mod:`~mesh_sdk.protocol.patch` — JSON equality, merges and RFC 6902 record patches (§11);
* :mod:`~mesh_sdk.protocol.contract` — the contract runtime: specs, index, validation;
* :mod:`~mesh_sdk.protocol.generated` — the built-in contract's models and index (no facade).

It imports no asyncio, websockets, redis or SDK client code (``tests/unit/test_import_purity.py``).
"""
