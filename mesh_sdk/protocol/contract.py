"""Runtime contract index and validation (protocol.md §4, §7; contract/README.md).

Codegen turns a contract directory into pydantic models plus a ``contract_index.py`` module that
builds one :class:`ContractIndex` from the classes here. The server looks commands, channels and
records up in it and validates payloads at the edge; the SDK uses the same specs to decode pushes.

Validation approach: every generated model derives from :class:`ContractModel` and every scalar is
a ``Strict*`` type, and validation always runs with ``strict=True`` on the already-parsed Python
object (the ``orjson.loads`` result). That matches JSON Schema's type rules without re-encoding:
``"1"`` is not an integer, ``true`` is not a number, ``1`` is accepted as a number. String formats
are plain ``str`` subclasses-by-annotation (:data:`DateTimeStr` …) checked by the same rules as
``jsonschema.FormatChecker``, so values round-trip byte-exactly (no ``datetime`` normalisation).

Validation mode per direction (contract/README.md "Evolving a contract"): what a server *reads*
(requests, record writes) and what any side is about to *write* is validated in full, unknown
members included (``validate_*``, ``dump_*``). What a client *reads* (responses, pushes, channel
messages, record values: ``read_*``, :func:`read_model`) ignores unknown members by default, so a
server may add an optional member without breaking older clients; unknown members are dropped
from the model (the raw JSON keeps them). A contract generated with ``--strict-readers``
(``ContractIndex.strict_readers``) reads in full too.

This module imports no asyncio, websockets or redis.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, RootModel
from pydantic.config import ExtraValues

from mesh_sdk.protocol.errors import ValidationError
from mesh_sdk.protocol.formats import DateStr, DateTimeStr, EmailStr, UriStr, UuidStr
from mesh_sdk.protocol.patch import json_pointer

__all__ = [
    "ChannelSpec",
    "CommandSpec",
    "ContractIndex",
    "ContractModel",
    "DateStr",
    "DateTimeStr",
    "EmailStr",
    "PushSpec",
    "RecordSpec",
    "UriStr",
    "UuidStr",
    "fill_template",
    "read_model",
    "read_model_json",
    "to_jsonable",
    "to_wire",
    "validation_problems",
]


class ContractModel(BaseModel):
    """Base class of every generated contract model.

    Strict by default (JSON Schema types, no coercion). Unknown members are ignored unless the
    schema says ``additionalProperties: false``, in which case the generated class forbids them;
    readers override that per call (:func:`read_model`), never by a second set of classes.
    """

    model_config = ConfigDict(strict=True)


# --- Validation problems (protocol.md §4 EVALIDATION details) -----------------------------------


def _walk(payload: Any, loc: Sequence[str | int]) -> tuple[list[str | int], str | int | None]:
    """Follow ``loc`` through ``payload``; return the reached path and the unreached last key.

    Pydantic locations also contain union member tags (class names, ``function-after[…]``) that
    are not part of the payload: they are skipped because they name nothing in the document.
    """
    path: list[str | int] = []
    current = payload
    last: str | int | None = None
    for index, token in enumerate(loc):
        in_dict = isinstance(current, dict) and isinstance(token, str) and token in current
        in_list = (
            isinstance(current, list)
            and isinstance(token, int)
            and not isinstance(token, bool)
            and 0 <= token < len(current)
        )
        if in_dict or in_list:
            current = current[token]
            path.append(token)
        elif index == len(loc) - 1:
            last = token
    return path, last


def validation_problems(exc: pydantic.ValidationError, payload: Any = None) -> list[dict[str, str]]:
    """Turn a pydantic error into protocol.md §4 ``details``: ``[{"path", "message"}]``.

    ``path`` is an RFC 6901 pointer into the payload; a missing member is reported at its parent
    object (``{"path": "", "message": "'roomName' is a required property"}``), so is an unexpected
    one. Pydantic's union member tags are dropped. Order follows pydantic's (deterministic),
    duplicates removed.

    Args:
        exc: The error raised by validating ``payload``.
        payload: The validated document; used to tell payload keys from union tags. Without it,
            string locations are assumed to be keys.

    Returns:
        The problem list, never empty.
    """
    problems: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [t for t in error["loc"] if isinstance(t, str | int)]
        kind = error["type"]
        if payload is None:
            path, last = list(loc[:-1]), (loc[-1] if loc else None)
            if kind not in ("missing", "extra_forbidden") and loc:
                path, last = list(loc), None
        else:
            path, last = _walk(payload, loc)
            if kind == "extra_forbidden" and loc:
                # The unexpected member is in the payload, so the walk reached it: report it
                # at its parent object, like a missing one.
                last = loc[-1]
        if kind == "missing" and last is not None:
            message = f"'{last}' is a required property"
        elif kind == "extra_forbidden" and last is not None:
            path = path[:-1] if path and path[-1] == last else path
            message = f"Additional properties are not allowed ('{last}' was unexpected)"
        else:
            message = str(error["msg"])
        item = (json_pointer(path), message)
        if item not in seen:
            seen.add(item)
            problems.append({"path": item[0], "message": item[1]})
    if not problems:  # pragma: no cover - pydantic always reports at least one error
        problems.append({"path": "", "message": str(exc)})
    return problems


M = TypeVar("M", bound=BaseModel)


def _extra(strict: bool) -> ExtraValues | None:
    """The per-call ``extra`` of a reader: the model's own rule when strict, else ``ignore``.

    The override applies to every nested model of the validated tree; generated maps
    (``additionalProperties`` schemas) are ``dict`` fields, which it does not touch.
    """
    return None if strict else "ignore"


def _validate(model: type[BaseModel], obj: Any, what: str, *, strict_reader: bool = True) -> Any:
    """Validate ``obj`` strictly against ``model``: the one implementation every spec uses.

    Args:
        model: The model.
        obj: The parsed JSON value.
        what: Names the payload in the error message.
        strict_reader: Reject unknown members where the schema forbids them (writers and the
            server); ``False`` ignores them (client readers).

    Raises:
        ValidationError: ``EVALIDATION`` ``Invalid <what>`` with the §4 problem list.
    """
    try:
        return model.model_validate(obj, strict=True, extra=_extra(strict_reader))
    except pydantic.ValidationError as exc:
        error = ValidationError(f"Invalid {what}", details=validation_problems(exc, obj))
        raise error from None


def read_model(model: type[M], obj: Any, *, strict: bool = False) -> M:
    """Validate a payload a client *reads* (a response, push, message or record value).

    Unknown members are ignored (tolerant reader) unless ``strict``; everything else is checked
    as the model says. Used for models given to the SDK directly (``model=``) and by facades.

    Raises:
        pydantic.ValidationError: ``obj`` violates the model.
    """
    return model.model_validate(obj, extra=_extra(strict))


def read_model_json(model: type[M], text: str | bytes, *, strict: bool = False) -> M:
    """Like :func:`read_model`, from JSON text (``model_validate_json``).

    Raises:
        pydantic.ValidationError: ``text`` is not JSON or violates the model.
    """
    return model.model_validate_json(text, extra=_extra(strict))


def to_jsonable(value: Any) -> Any:
    """Return a pydantic model as JSON-able Python, the one way both sides dump; others as is.

    Wire names (``by_alias``); ``exclude_unset`` keeps absent members absent and explicit
    ``null`` as ``null``, so a validated payload dumps back to the same document.
    """
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return value


@functools.cache
def _wire_members(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """``(attribute, wire name)`` of each member of ``model``, in declaration order."""
    return tuple((name, info.alias or name) for name, info in model.model_fields.items())


def to_wire(model: BaseModel) -> Any:
    """Return the payload of a built-in protocol model, its member values taken as they are.

    The same document as :func:`to_jsonable` for the generated built-in models (wire names,
    declaration order, absent members absent, explicit ``null`` kept; nested models and root
    models converted), without re-walking member values: those hold JSON already (validated
    input, backend data), and dumping them again would copy them (a 1 MB record value costs
    about four times its ``orjson`` encoding). Not for models whose members hold other Python
    types (``datetime``, enums, models inside lists): use :func:`to_jsonable` for those.
    """
    if isinstance(model, RootModel):
        root = model.root
        return to_wire(root) if isinstance(root, BaseModel) else root
    present = model.model_fields_set
    payload: dict[str, Any] = {}
    for name, wire in _wire_members(type(model)):
        if name in present:
            value = getattr(model, name)
            payload[wire] = to_wire(value) if isinstance(value, BaseModel) else value
    return payload


def _dump(model: type[BaseModel], value: Any) -> Any:
    """Dump a model to JSON-able Python; plain values are validated against ``model`` first."""
    if not isinstance(value, BaseModel):
        value = _validate(model, value, model.__name__)
    return to_jsonable(value)


# --- Specs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command of a contract: wire name and request/response models."""

    name: str
    request_model: type[BaseModel]
    response_model: type[BaseModel]
    description: str = ""

    def validate_request(self, payload: Any) -> Any:
        """Validate a request payload (protocol.md §3.4 step 3) and return the typed model.

        Raises:
            ValidationError: ``EVALIDATION`` with ``Invalid payload for "<name>"`` and details.
        """
        # The same message as ValidationError.for_command (protocol.md §4).
        return _validate(self.request_model, payload, f'payload for "{self.name}"')

    def read_response(self, payload: Any, *, strict: bool = False) -> Any:
        """Validate a response payload a client received and return the typed model.

        Args:
            payload: The parsed response payload.
            strict: Reject unknown members too (``--strict-readers``); by default they are
                ignored, so a server may add optional response members.

        Raises:
            ValidationError: The payload violates the response schema.
        """
        what = f'response for "{self.name}"'
        return _validate(self.response_model, payload, what, strict_reader=strict)

    def dump_request(self, value: Any) -> Any:
        """Return the JSON-able payload of a request model (or validated plain value)."""
        return _dump(self.request_model, value)

    def dump_response(self, value: Any) -> Any:
        """Return the JSON-able payload of a response model (or validated plain value)."""
        return _dump(self.response_model, value)


def fill_template(template: str, pattern: re.Pattern[str], params: Mapping[str, str]) -> str:
    """Fill ``{param}`` placeholders of a channel/record template and check the result.

    Raises:
        ValueError: A parameter is missing or the name does not fully match ``pattern``.
    """
    try:
        name = template.format_map(dict(params))
    except KeyError as exc:
        raise ValueError(f"missing parameter {exc.args[0]!r} for {template!r}") from None
    if pattern.fullmatch(name) is None:
        raise ValueError(f"{name!r} does not match {pattern.pattern!r}")
    return name


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """A channel family: name pattern (full match), name template and message model."""

    name: str
    pattern: re.Pattern[str]
    template: str
    message_model: type[BaseModel]

    def validate_message(self, obj: Any) -> Any:
        """Validate a decoded message and return the typed model.

        Raises:
            ValidationError: The message violates the channel's schema.
        """
        return _validate(self.message_model, obj, f'message for channel "{self.name}"')

    def dump_message(self, value: Any) -> Any:
        """Return the JSON-able form of a message model."""
        return _dump(self.message_model, value)

    def decode_message(self, text: str, *, strict: bool = False) -> Any:
        """Parse the JSON text of a ``mesh/subscription-message`` (protocol.md §8) and read it.

        Args:
            text: The message text.
            strict: Reject unknown members too (``--strict-readers``); by default a client
                ignores them.

        Raises:
            ValidationError: The text is not JSON or violates the schema.
        """
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ValidationError(
                f'Invalid message for channel "{self.name}"',
                details=[{"path": "", "message": "not valid JSON"}],
            ) from None
        what = f'message for channel "{self.name}"'
        return _validate(self.message_model, obj, what, strict_reader=strict)

    def encode_message(self, value: Any) -> str:
        """Return the compact JSON text to publish for a message model."""
        return orjson.dumps(self.dump_message(value)).decode()

    def build_name(self, **params: str) -> str:
        """Return the channel name for ``params`` (see :func:`fill_template`)."""
        return fill_template(self.template, self.pattern, params)


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """A record family: id pattern (full match), id template, value model and writability."""

    name: str
    pattern: re.Pattern[str]
    template: str
    model: type[BaseModel]
    writable: bool = False

    def validate_value(self, obj: Any) -> Any:
        """Validate a record value in full (a write: checked by the writer and the server).

        Raises:
            ValidationError: The value violates the record's schema.
        """
        return _validate(self.model, obj, f'value for record "{self.name}"')

    def read_value(self, obj: Any, *, strict: bool = False) -> Any:
        """Validate a record value a client received and return the typed model.

        Args:
            obj: The parsed value.
            strict: Reject unknown members too (``--strict-readers``); by default ignored.

        Raises:
            ValidationError: The value violates the record's schema.
        """
        what = f'value for record "{self.name}"'
        return _validate(self.model, obj, what, strict_reader=strict)

    def dump_value(self, value: Any) -> Any:
        """Return the JSON-able form of a record value."""
        return _dump(self.model, value)

    def build_id(self, **params: str) -> str:
        """Return the record id for ``params`` (see :func:`fill_template`)."""
        return fill_template(self.template, self.pattern, params)


@dataclass(frozen=True, slots=True)
class PushSpec:
    """A server push: wire name and payload model (protocol.md §8)."""

    name: str
    model: type[BaseModel]

    def read_payload(self, obj: Any, *, strict: bool = False) -> Any:
        """Validate a push payload a client received and return the typed model.

        Args:
            obj: The parsed payload.
            strict: Reject unknown members too (``--strict-readers``); by default ignored.

        Raises:
            ValidationError: The payload violates the push's schema.
        """
        what = f'payload for push "{self.name}"'
        return _validate(self.model, obj, what, strict_reader=strict)

    def dump_payload(self, value: Any) -> Any:
        """Return the JSON-able form of a push payload."""
        return _dump(self.model, value)


@dataclass(frozen=True)
class ContractIndex:
    """Everything a contract declares, looked up by wire name or by full-match pattern.

    Attributes:
        name: The contract name (``contract.json``).
        fingerprint: ``sha256:…`` of the contract's normal form (contract/README.md
            "Fingerprint"); generated indexes always have one. The server announces it with
            ``mesh/contract-info``; facades compare it on connect.
        strict_readers: Clients read responses, pushes, messages and record values in full,
            rejecting unknown members (``mesh codegen --strict-readers``); by default they
            ignore them (tolerant readers).
    """

    name: str
    command_specs: Iterable[CommandSpec] = ()
    channel_specs: Iterable[ChannelSpec] = ()
    record_specs: Iterable[RecordSpec] = ()
    push_specs: Iterable[PushSpec] = ()
    fingerprint: str | None = None
    strict_readers: bool = False
    _commands: Mapping[str, CommandSpec] = field(init=False, repr=False)
    _pushes: Mapping[str, PushSpec] = field(init=False, repr=False)
    _channels: tuple[ChannelSpec, ...] = field(init=False, repr=False)
    _records: tuple[RecordSpec, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "_commands", MappingProxyType({c.name: c for c in self.command_specs}))
        set_(self, "_pushes", MappingProxyType({p.name: p for p in self.push_specs}))
        set_(self, "_channels", tuple(self.channel_specs))
        set_(self, "_records", tuple(self.record_specs))

    @property
    def commands(self) -> Mapping[str, CommandSpec]:
        """Wire name → command spec (read-only)."""
        return self._commands

    @property
    def pushes(self) -> Mapping[str, PushSpec]:
        """Wire name → push spec (read-only)."""
        return self._pushes

    @property
    def channels(self) -> Sequence[ChannelSpec]:
        """Channel families in contract order (sorted by file name)."""
        return self._channels

    @property
    def records(self) -> Sequence[RecordSpec]:
        """Record families in contract order (sorted by file name)."""
        return self._records

    def command(self, name: str) -> CommandSpec | None:
        """Return the spec of command ``name``, or ``None``."""
        return self._commands.get(name)

    def push(self, name: str) -> PushSpec | None:
        """Return the spec of push ``name``, or ``None``."""
        return self._pushes.get(name)

    def channel_for(self, channel_name: str) -> ChannelSpec | None:
        """Return the first channel spec whose pattern fully matches ``channel_name``."""
        for spec in self._channels:
            if spec.pattern.fullmatch(channel_name):
                return spec
        return None

    def record_for(self, record_id: str) -> RecordSpec | None:
        """Return the first record spec whose pattern fully matches ``record_id``."""
        for spec in self._records:
            if spec.pattern.fullmatch(record_id):
                return spec
        return None
