"""Export a contract as an AsyncAPI 3.0.0 document (``mesh export asyncapi``).

The document describes the **server** application (AsyncAPI's point of view is the application
the document is about): it *receives* commands and record writes and *sends* replies, channel
messages, record updates and pushes. Mapping (contract/README.md "AsyncAPI export"):

* every contract definition (file roots and ``$defs`` entries) becomes
  ``components.schemas.<Title>`` (built-ins: ``mesh.<Title>``) with ``$ref`` rewritten to it.
  Contract schemas use a keyword subset that means the same in AsyncAPI's Schema Object (a
  JSON Schema draft-07 superset), so they are exported unchanged otherwise;
* a command is a channel addressed by its wire name with ``request``, ``response`` and ``error``
  messages and a ``receive`` operation whose ``reply`` lists the last two; ``headers`` describe
  the envelope members beside ``payload`` (``id``, ``command``, ``error``), and the correlation id
  is ``$message.header#/id`` (protocol.md §3);
* a channel family is a channel addressed by its template (``chat:{room}``, one parameter per
  placeholder) with a ``send`` operation; the message payload is the channel's message schema,
  which travels as JSON text inside ``mesh/subscription-message`` (protocol.md §8, §9);
* a record family is a channel addressed by its id template with a ``send`` operation for updates
  (the value schema; carried by ``mesh/record-update``) and, if writable, a ``receive`` operation
  for writes (carried by ``mesh/publish-record-update``);
* with the built-in contract, every ``mesh/*`` command becomes a command channel as above and
  every push a channel addressed by its push name with a ``send`` operation.

Output is deterministic: entries in wire-name order, schema members in contract order.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Final

from codegen.fingerprint import contract_fingerprint
from codegen.loader import Contract, Entry
from codegen.refs import resolve_ref
from mesh_sdk.protocol.patch import json_pointer

__all__ = ["ASYNCAPI_VERSION", "ERROR_OBJECT", "dumps", "export_asyncapi"]

ASYNCAPI_VERSION: Final = "3.0.0"
BUILTIN_PREFIX: Final = "mesh."
ERROR_MESSAGE: Final = "mesh.ErrorResponse"
CORRELATION: Final = "mesh.requestId"
ERROR_OBJECT: Final[dict[str, Any]] = {
    "title": "ErrorObject",
    "type": "object",
    "description": "The error object (§4).",
    "properties": {
        "error": {"type": "string", "description": "Human-readable message; never parsed."},
        "code": {"type": "string"},
        "name": {"type": "string"},
        "details": {"description": "See the error table (errors.json)."},
    },
    "required": ["error", "code", "name"],
}
"""protocol.md §4 error object, as in ``contract/mesh/shared/envelope.json`` (a test keeps both).

Every command can fail, so every export carries it, with or without the built-in contract.
"""

_DROPPED: Final = frozenset({"$schema", "$id", "$defs"})
_ID_DESCRIPTION: Final = "Any JSON value chosen by the client, echoed in the response (§3.3)."


def _ref(*tokens: str) -> dict[str, str]:
    return {"$ref": "#" + json_pointer(tokens)}


class _Exporter:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    # -- schemas ------------------------------------------------------------------------------

    def add_schemas(self, contract: Contract, prefix: str) -> None:
        keys = {loc: prefix + d.title for loc, d in contract.definitions.items()}
        schemas = self.doc["components"]["schemas"]

        def convert(node: Any, file: str, top: bool) -> Any:
            if isinstance(node, list):
                return [convert(item, file, False) for item in node]
            if not isinstance(node, dict):
                return node
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key in _DROPPED or (top and key.startswith("x-mesh-")):
                    continue
                if key == "$ref":
                    out[key] = _ref("components", "schemas", keys[resolve_ref(file, value)])["$ref"]
                elif key == "properties":
                    out[key] = {name: convert(sub, file, False) for name, sub in value.items()}
                elif key in ("enum", "const", "default", "examples", "required"):
                    out[key] = copy.deepcopy(value)
                else:
                    out[key] = convert(value, file, False)
            return out

        for loc, definition in sorted(contract.definitions.items(), key=lambda kv: keys[kv[0]]):
            schemas[keys[loc]] = convert(definition.schema, definition.file, True)

    # -- entries ------------------------------------------------------------------------------

    def add_command(self, entry: Entry, prefix: str) -> None:
        channel_id = f"{prefix}commands.{entry.stem}"

        def headers(required: list[str]) -> dict[str, Any]:
            return {
                "type": "object",
                "properties": {
                    "id": {"description": _ID_DESCRIPTION},
                    "command": {"const": entry.wire},
                },
                "required": required,
            }

        messages = {
            "request": {
                "name": entry.request,
                "title": entry.request,
                "headers": headers(["id", "command"]),
                "payload": _ref("components", "schemas", prefix + entry.request),
                "correlationId": _ref("components", "correlationIds", CORRELATION),
            },
            "response": {
                "name": entry.response,
                "title": entry.response,
                "description": "Success: the envelope has no top-level `error` (§3.5).",
                "headers": headers(["id"]),
                "payload": _ref("components", "schemas", prefix + entry.response),
                "correlationId": _ref("components", "correlationIds", CORRELATION),
            },
            "error": _ref("components", "messages", ERROR_MESSAGE),
        }
        self.add_channel(channel_id, entry, {"messages": messages, "x-mesh-command": entry.wire})
        self.doc["operations"][channel_id] = {
            "action": "receive",
            "channel": _ref("channels", channel_id),
            **self.texts(entry),
            "messages": [_ref("channels", channel_id, "messages", "request")],
            "reply": {
                "channel": _ref("channels", channel_id),
                "messages": [
                    _ref("channels", channel_id, "messages", "response"),
                    _ref("channels", channel_id, "messages", "error"),
                ],
            },
        }

    def add_family(self, entry: Entry, prefix: str) -> None:
        channel_id = f"{prefix}{entry.kind}.{entry.stem}"
        payload = _ref("components", "schemas", prefix + entry.title)
        params = [p.split("}")[0] for p in entry.template.split("{")[1:]]
        extra: dict[str, Any] = {
            "parameters": {
                name: {
                    "description": f"Fills `{{{name}}}`; the whole name must match "
                    f"`{entry.pattern}` (x-mesh-pattern)."
                }
                for name in params
            },
            "x-mesh-pattern": entry.pattern,
        }
        if entry.kind == "channels":
            extra["x-mesh-channel"] = entry.template
            messages: dict[str, Any] = {
                "message": {
                    "name": entry.title,
                    "title": entry.title,
                    "description": "Travels as JSON text in the `message` member of a "
                    "`mesh/subscription-message` push (§8, §9); subscribe with "
                    "`mesh/subscribe-channel`.",
                    "payload": payload,
                    "x-mesh-push": "mesh/subscription-message",
                }
            }
        else:
            extra["x-mesh-record"] = entry.template
            extra["x-mesh-writable"] = entry.writable
            messages = {
                "update": {
                    "name": entry.title + "Update",
                    "title": entry.title,
                    "description": "The record's value: `full` of a `mesh/record-update` push, or "
                    "in patch mode an RFC 6902 `patch` against the previous version (§11); "
                    "subscribe with `mesh/subscribe-record`.",
                    "payload": payload,
                    "x-mesh-push": "mesh/record-update",
                }
            }
            if entry.writable:
                messages["write"] = {
                    "name": entry.title + "Write",
                    "title": entry.title,
                    "description": "A new value, sent as `newValue` of a "
                    "`mesh/publish-record-update` command (§11.3).",
                    "payload": payload,
                    "x-mesh-command": "mesh/publish-record-update",
                }
        self.add_channel(channel_id, entry, {"messages": messages, **extra})
        operations = self.doc["operations"]
        first = next(iter(messages))
        operations[channel_id] = {
            "action": "send",
            "channel": _ref("channels", channel_id),
            **self.texts(entry),
            "messages": [_ref("channels", channel_id, "messages", first)],
        }
        if "write" in messages:
            operations[channel_id + ".write"] = {
                "action": "receive",
                "channel": _ref("channels", channel_id),
                "title": entry.title + " write",
                "messages": [_ref("channels", channel_id, "messages", "write")],
            }

    def add_push(self, entry: Entry, prefix: str) -> None:
        channel_id = f"{prefix}pushes.{entry.stem}"
        message = {
            "name": entry.title,
            "title": entry.title,
            "headers": {
                "type": "object",
                "properties": {"command": {"const": entry.wire}},
                "required": ["command"],
            },
            "payload": _ref("components", "schemas", prefix + entry.title),
        }
        self.add_channel(channel_id, entry, {"messages": {"push": message}})
        self.doc["operations"][channel_id] = {
            "action": "send",
            "channel": _ref("channels", channel_id),
            **self.texts(entry),
            "messages": [_ref("channels", channel_id, "messages", "push")],
        }

    def add_channel(self, channel_id: str, entry: Entry, body: dict[str, Any]) -> None:
        self.doc["channels"][channel_id] = {"address": entry.wire, **self.texts(entry), **body}

    @staticmethod
    def texts(entry: Entry) -> dict[str, str]:
        texts = {"title": entry.title}
        if entry.description:
            texts["description"] = entry.description
        return texts


def _shell(contract: Contract, api_version: str) -> dict[str, Any]:
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": contract.name,
            "version": api_version,
            "description": (
                f"Mesh contract {contract.name}, exported by `mesh export asyncapi`. Every frame "
                "is one JSON object on one WebSocket connection (protocol.md §2, §3): message "
                "`headers` describe the envelope members beside `payload`; channel and record "
                "addresses are the contract's name templates."
            ),
            "x-mesh-fingerprint": contract_fingerprint(contract),
        },
        "defaultContentType": "application/json",
        "channels": {},
        "operations": {},
        "components": {
            "schemas": {},
            "messages": {
                ERROR_MESSAGE: {
                    "name": "ErrorResponse",
                    "title": "Error response",
                    "description": "A response is an error iff it has a top-level `error` "
                    "(§4); the payload repeats the error object for JavaScript clients.",
                    "headers": {
                        "type": "object",
                        "properties": {
                            "id": {"description": _ID_DESCRIPTION},
                            "command": {"type": "string"},
                            "error": _ref("components", "schemas", "mesh.ErrorObject"),
                        },
                        "required": ["id", "error"],
                    },
                    "payload": _ref("components", "schemas", "mesh.ErrorObject"),
                    "correlationId": _ref("components", "correlationIds", CORRELATION),
                }
            },
            "correlationIds": {
                CORRELATION: {
                    "description": "The request's `id`, echoed by its response (§3.3).",
                    "location": "$message.header#/id",
                }
            },
        },
    }


def export_asyncapi(
    contract: Contract, *, builtins: Contract | None = None, api_version: str = "0.0.0"
) -> dict[str, Any]:
    """Return the AsyncAPI 3.0.0 document for ``contract`` (module docstring).

    Args:
        contract: The application contract.
        builtins: The built-in protocol contract (``contract/mesh``) to include, or None.
        api_version: ``info.version`` (AsyncAPI requires one; contracts carry no version, the
            fingerprint in ``info.x-mesh-fingerprint`` identifies the contract).
    """
    exporter = _Exporter(_shell(contract, api_version))
    exporter.doc["components"]["schemas"]["mesh.ErrorObject"] = copy.deepcopy(ERROR_OBJECT)
    sources = [(contract, "")] + ([(builtins, BUILTIN_PREFIX)] if builtins is not None else [])
    for source, prefix in sources:
        exporter.add_schemas(source, prefix)
        for entry in source.entries_of("commands"):
            exporter.add_command(entry, prefix)
        for kind in ("channels", "records"):
            for entry in source.entries_of(kind):
                exporter.add_family(entry, prefix)
        for entry in source.entries_of("pushes"):
            exporter.add_push(entry, prefix)
    schemas = exporter.doc["components"]["schemas"]
    exporter.doc["components"]["schemas"] = {key: schemas[key] for key in sorted(schemas)}
    return exporter.doc


def dumps(document: dict[str, Any]) -> str:
    """Serialize an exported document: 2-space indented JSON, UTF-8 text, final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
