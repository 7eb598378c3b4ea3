"""String formats of contract models, accepted exactly like ``jsonschema.FormatChecker``.

``format: date-time`` and friends are plain ``str`` annotated with a validator, so values keep
their original text (no ``datetime``/``AnyUrl`` normalisation) and round-trip byte-exactly.
Generated models refer to them through :mod:`mesh_sdk.protocol.contract`, which re-exports them
(codegen's ``--type-overrides``).

This module imports no asyncio, websockets or redis.
"""

from __future__ import annotations

import datetime as _dt
import re
import uuid as _uuid
from typing import Annotated, Final

from pydantic import AfterValidator, StrictStr

__all__ = ["DateStr", "DateTimeStr", "EmailStr", "UriStr", "UuidStr"]

_RFC3339: Final = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(\d{2})[Tt]"
    r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# RFC 3986 ``URI`` (absolute, with scheme) at the character level.
_URI: Final = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:"
    r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?\[\]]|%[0-9A-Fa-f]{2})*"
    r"(?:#(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?",
    re.ASCII,
)


def _check_date_time(value: str) -> str:
    match = _RFC3339.fullmatch(value)
    if match is None or int(match[1]) == 0:
        raise ValueError("is not a 'date-time'")
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    try:
        _dt.date(year, month, day)
    except ValueError:
        raise ValueError("is not a 'date-time'") from None
    return value


def _check_date(value: str) -> str:
    if _DATE.fullmatch(value) is None:
        raise ValueError("is not a 'date'")
    try:
        _dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a 'date'") from None
    return value


def _check_email(value: str) -> str:
    if "@" not in value:
        raise ValueError("is not a 'email'")
    return value


def _check_uri(value: str) -> str:
    if _URI.fullmatch(value) is None:
        raise ValueError("is not a 'uri'")
    return value


def _check_uuid(value: str) -> str:
    try:
        _uuid.UUID(value)
    except ValueError:
        raise ValueError("is not a 'uuid'") from None
    if len(value) != 36 or any(value[i] != "-" for i in (8, 13, 18, 23)):
        raise ValueError("is not a 'uuid'")
    return value


DateTimeStr = Annotated[StrictStr, AfterValidator(_check_date_time)]
"""``format: date-time`` (RFC 3339, offset required); kept as the original string."""
DateStr = Annotated[StrictStr, AfterValidator(_check_date)]
"""``format: date`` (``YYYY-MM-DD``)."""
EmailStr = Annotated[StrictStr, AfterValidator(_check_email)]
"""``format: email`` (jsonschema's check: contains ``@``)."""
UriStr = Annotated[StrictStr, AfterValidator(_check_uri)]
"""``format: uri`` (absolute RFC 3986 URI)."""
UuidStr = Annotated[StrictStr, AfterValidator(_check_uuid)]
"""``format: uuid`` (hyphenated 8-4-4-4-12)."""
