"""Strict JSON (RFC 8259, protocol.md §2): parsing, encoding and nesting depth, without recursion.

The codec's JSON layer. orjson does the work on the hot path; the standard library covers the
valid JSON orjson refuses. Both of those recurse (in C) on nested values, so nothing deeper than
:data:`FALLBACK_MAX_DEPTH` ever reaches the standard library, and the helpers that measure depth
or find a member's text are iterative: hostile nesting can never raise ``RecursionError``.
Nesting levels count containers: a scalar has depth 0, ``[]`` and ``{"a": 1}`` depth 1,
``[[1]]`` depth 2.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

__all__ = [
    "FALLBACK_MAX_DEPTH",
    "JSONDecodeError",
    "dumps",
    "loads",
    "may_nest_deeper",
    "member_text",
    "nested_deeper_than",
    "text_nests_deeper",
]

FALLBACK_MAX_DEPTH: Final = 256
"""Deepest document the standard-library fallbacks parse or encode (orjson stops at 1024 levels
when parsing and 255 when encoding)."""

_CONTAINERS: Final = (list, dict)
_NOT_STRUCTURE: Final = bytes(sorted(set(range(256)) - set(b'"[]{}')))  # translate() deletes
_CURLY_TO_SQUARE: Final = bytes.maketrans(b"{}", b"[]")
# Tokens of a valid JSON text: a string, an opening or closing bracket, or a run of anything else
# (scalars, ":", ",", whitespace). Possessive quantifiers: linear time, no backtracking.
_TOKENS: Final = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"|[\[{]|[\]}]|[^"\[\]{}]++')
_SEPARATORS: Final = " \t\n\r:,"


class JSONDecodeError(ValueError):
    """Raised by :func:`loads` for anything that is not strict JSON."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def loads(data: bytes | str) -> Any:
    """Parse strict JSON from bytes or text.

    orjson handles the common case: like JavaScript's ``JSON.parse`` it reads integers beyond 64
    bits as floats (request ids keep their exact text, see
    :func:`mesh_sdk.protocol.codec.decode_client_frame`). Valid
    JSON it refuses (numbers beyond the double range such as ``1e400``, which become ``inf``) is
    parsed by the standard library, still rejecting ``NaN``/``Infinity``; that parser recurses,
    so it never sees a document nested deeper than 256 levels.

    Raises:
        JSONDecodeError: The input is not valid UTF-8, not strict JSON, or nested too deeply.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        error = str(exc)
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray | memoryview) else data
        if isinstance(data, str):
            text.encode("utf-8")  # lone surrogates are not valid UTF-8 text
    except UnicodeError:
        raise JSONDecodeError(error) from None
    if text_nests_deeper(text, FALLBACK_MAX_DEPTH):
        raise JSONDecodeError(f"nested deeper than {FALLBACK_MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
        # orjson refuses escaped lone surrogates ("\ud800"); so do we: not valid UTF-8.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError):
        raise JSONDecodeError(error) from None
    return value


def dumps(value: Any) -> bytes:
    """Serialize ``value`` as compact JSON bytes.

    NaN and ±Infinity are never emitted (protocol.md §2): like JavaScript's ``JSON.stringify``,
    they become ``null``.

    Raises:
        TypeError: ``value`` is not representable as strict JSON.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        # Integers beyond 64 bits are valid JSON orjson will not write; NaN must never be sent.
        # orjson also stops at 255 levels; the standard library encoder recurses, so it only
        # sees values within the fallback depth.
        if nested_deeper_than(value, FALLBACK_MAX_DEPTH):
            raise TypeError(f"{exc}: nested deeper than {FALLBACK_MAX_DEPTH} levels") from None
        try:
            return json.dumps(
                value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
        except ValueError as exc:
            raise TypeError(str(exc)) from None


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Return whether a decoded JSON value has more than ``limit`` nesting levels.

    Iterative (no recursion, whatever the depth) and stops at the first level beyond ``limit``.
    A scalar has depth 0, ``[]`` and ``{}`` depth 1, ``[[]]`` depth 2.
    """
    if type(value) not in _CONTAINERS:
        return False
    if limit < 1:
        return True
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        children = node.values() if type(node) is dict else node
        for child in children:
            if type(child) in _CONTAINERS:
                if depth >= limit:
                    return True
                push((child, depth + 1))
    return False


def may_nest_deeper(data: bytes | str, limit: int) -> bool:
    """Pre-check on an object's JSON text: could one of its members nest beyond ``limit``?

    ``False`` is definite; ``True`` means "walk the decoded members". The object is one level
    itself, so no member is deeper than ``limit`` when the text is at most ``limit + 1`` deep;
    that is measured at C speed (see :func:`text_nests_deeper`), which spares the walk for every
    frame that is not really deep.
    """
    if len(data) <= 2 * (limit + 1):
        return False  # depth d takes 2d brackets
    return text_nests_deeper(data, limit + 1)


def text_nests_deeper(data: bytes | str, limit: int) -> bool:
    """Whether a JSON text nests deeper than ``limit``, found without parsing it.

    Only C-speed string operations, each linear in the text, and at most ``limit`` passes: escaped
    backslashes and escaped quotes are dropped, so the quotes left delimit strings; what lies
    between them is dropped, and the brackets left are reduced pass by pass (each pass removes
    the innermost containers). A text with at most ``limit`` opening brackets is not even
    scanned.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = data.translate(None, _NOT_STRUCTURE)
    brackets = b"".join(structure.split(b'"')[::2]).translate(_CURLY_TO_SQUARE)
    # Each pass removes the innermost containers ("[]" pairs): the number of passes is the depth.
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return True  # unbalanced: not JSON anyway (the parser will say why)
        brackets = shorter
    # Brackets left after ``limit`` passes nest deeper; none left (e.g. only brackets inside
    # strings, with limit 0) do not.
    return bool(brackets)


def member_text(text: str, name: str) -> str | None:
    """Return the JSON text of the last top-level member ``name`` of a valid JSON object text.

    Iterative, so safe at any depth. The codec uses it for ids whose decoded value would not
    encode back to the text the client sent (protocol.md §3.3: ids are echoed verbatim).
    """
    found: str | None = None
    depth = 0
    key: str | None = None  # the top-level member whose value comes next
    start = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        first = token[0]
        if first == "[" or first == "{":
            depth += 1
            if depth == 2:
                start = match.start()
        elif first == "]" or first == "}":
            depth -= 1
            if depth == 1:
                if key == name:
                    found = text[start : match.end()]
                key = None
        elif depth == 1:
            if first == '"':
                if key is None:
                    key = json.loads(token) if "\\" in token else token[1:-1]
                    continue
                value = token
            else:
                value = token.strip(_SEPARATORS)
                if not value:
                    continue
            if key == name:
                found = value
            key = None
    return found
