"""String templates of the generated ``facade.py``, ``contract_index.py`` and ``__init__.py``.

Plain ``str.format``/f-strings (no Jinja): the output is reformatted by the pinned black anyway.
Every value is embedded with ``repr`` so escaping is Python's own.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Context", "contract_index", "doc_text", "facade", "package_init"]


@dataclass(frozen=True)
class Context:
    """Values shared by all templates."""

    name: str
    header: str
    fingerprint: str
    """``sha256:…`` of the contract (:func:`codegen.fingerprint.contract_fingerprint`)."""
    strict_readers: bool = False
    """Generated with ``--strict-readers``: clients read with unknown members rejected."""


def doc_text(text: str) -> str:
    """Return ``text`` as one docstring sentence (whitespace folded, quotes escaped)."""
    text = " ".join(text.split()).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return text.rstrip(".") + "." if text else ""


def contract_index(
    ctx: Context,
    commands: list[tuple[str, str, str, str]],
    channels: list[tuple[str, str, str, str]],
    records: list[tuple[str, str, str, str, bool]],
    pushes: list[tuple[str, str]],
) -> str:
    """Render ``contract_index.py``."""
    cmd = "".join(
        f"        CommandSpec({w!r}, models.{req}, models.{resp}, {d!r}),\n"
        for w, req, resp, d in commands
    )
    chan = "".join(
        f"        ChannelSpec({n!r}, re.compile({p!r}), {t!r}, models.{m}),\n"
        for n, p, t, m in channels
    )
    rec = "".join(
        f"        RecordSpec({n!r}, re.compile({p!r}), {t!r}, models.{m}, writable={w!r}),\n"
        for n, p, t, m, w in records
    )
    push = "".join(f"        PushSpec({w!r}, models.{m}),\n" for w, m in pushes)
    return f'''{ctx.header}
"""Contract index of {ctx.name}: wire name → command/push spec, name pattern → channel/record."""

from __future__ import annotations

import re
from typing import Final

from mesh_sdk.protocol.contract import ChannelSpec, CommandSpec, ContractIndex, PushSpec, RecordSpec

from . import models

__all__ = ["CONTRACT", "FINGERPRINT"]

FINGERPRINT: Final = {ctx.fingerprint!r}
"""The contract fingerprint (contract/README.md "Fingerprint"); servers announce theirs."""

CONTRACT: ContractIndex = ContractIndex(
    name={ctx.name!r},
    fingerprint=FINGERPRINT,
    strict_readers={ctx.strict_readers!r},
    command_specs=(
{cmd}    ),
    channel_specs=(
{chan}    ),
    record_specs=(
{rec}    ),
    push_specs=(
{push}    ),
)
"""Everything {ctx.name} declares (a :class:`mesh_sdk.protocol.contract.ContractIndex`)."""
'''


def _kwargs(params: list[str]) -> str:
    return "".join(f"{p}: str, " for p in params)


def _call(params: list[str]) -> str:
    return ", ".join(f"{p}={p}" for p in params)


def facade(
    ctx: Context,
    commands: list[tuple[str, str, str, str, str]],
    channels: list[tuple[str, str, list[str], str]],
    records: list[tuple[str, str, list[str], str]],
) -> str:
    """Render ``facade.py``."""
    n = ctx.name
    parts: list[str] = [
        f'''{ctx.header}
"""Typed client facade of {n}: one delegating call per stub into :mod:`mesh_sdk.facade`."""

from __future__ import annotations

from typing import Literal

from mesh_sdk.facade import (
    ChangeHandler,
    ChannelGroup,
    ChannelSubscriptionLike,
    CommandGroup,
    ContractCheck,
    FacadeClient,
    MeshClientLike,
    MessageHandler,
    RecordGroup,
    RecordSubscriptionLike,
)

from . import models
from .contract_index import CONTRACT
'''
    ]
    exports = [f"{n}Client", f"{n}Commands", f"{n}Channels", f"{n}Records"]
    # The name builders live in names.py (shared with the server facade); re-exported here.
    builders = [f"channel_name_{c[0]}" for c in channels] + [f"record_id_{r[0]}" for r in records]
    if builders:
        parts.append(f"from .names import {', '.join(sorted(builders))}\n")
        exports += builders
    parts.append("\n")
    parts.append(f'\nclass {n}Commands(CommandGroup):\n    """Typed commands of {n}."""\n\n')
    parts.append("    __slots__ = ()\n\n")
    for method, wire, req, resp, description in commands:
        doc = f"``{wire}``: {doc_text(description)}" if description else f"``{wire}``."
        parts.append(
            f'''    async def {method}(
        self, request: models.{req}, *, timeout: float | None = None
    ) -> models.{resp}:
        """{doc}"""
        return await self._call({wire!r}, request, models.{resp}, timeout)

'''
        )
    parts.append(f'\nclass {n}Channels(ChannelGroup):\n    """Typed channels of {n}."""\n\n')
    parts.append("    __slots__ = ()\n\n")
    for method, title, params, template in channels:
        parts.append(
            f'''    async def {method}(
        self,
        *,
        {_kwargs(params)}
        on_message: MessageHandler[models.{title}] | None = None,
        history_limit: int = 0,
    ) -> ChannelSubscriptionLike[models.{title}]:
        """Subscribe to ``{template}``."""
        return await self._subscribe(
            channel_name_{method}({_call(params)}), models.{title}, on_message, history_limit
        )

'''
        )
    parts.append(f'\nclass {n}Records(RecordGroup):\n    """Typed records of {n}."""\n\n')
    parts.append("    __slots__ = ()\n\n")
    for method, title, params, template in records:
        parts.append(
            f'''    async def {method}(
        self,
        *,
        {_kwargs(params)}
        mode: Literal["full", "patch"] = "full",
        on_change: ChangeHandler[models.{title}] | None = None,
    ) -> RecordSubscriptionLike[models.{title}]:
        """Subscribe to ``{template}``."""
        return await self._subscribe(
            record_id_{method}({_call(params)}), models.{title}, mode, on_change
        )

'''
        )
    parts.append(
        f'''
class {n}Client(FacadeClient):
    """Typed facade of {n} over a ``mesh_sdk.MeshClient`` (or any :class:`MeshClientLike`).


    The wrapped client is bound to the contract: requests are validated before sending,
    responses and pushes after receiving. ``contract_check``: what a server with another
    contract fingerprint causes on connect (:class:`mesh_sdk.facade.FacadeClient`).
    """

    def __init__(self, client: MeshClientLike, *, contract_check: ContractCheck = "warn") -> None:
        super().__init__(client, CONTRACT, contract_check=contract_check)
        self.commands = {n}Commands(client, CONTRACT)
        self.channels = {n}Channels(client, CONTRACT)
        self.records = {n}Records(client, CONTRACT)

'''
    )
    parts.append("\n__all__ = [" + ", ".join(repr(e) for e in sorted(exports)) + "]\n")
    return "".join(parts)


def package_init(ctx: Context, *, facade: bool = True) -> str:
    """Render ``__init__.py``; without ``facade`` it exports only the models and the index.

    The facades load on first access (PEP 562): importing the server facade must not load the
    SDK's client side through the client facade, and vice versa.
    """
    if not facade:
        return f'''{ctx.header}
"""Generated package of the {ctx.name} contract: models and contract index (no client facade)."""

from . import models
from .contract_index import CONTRACT, FINGERPRINT

__all__ = ["CONTRACT", "FINGERPRINT", "models"]
'''
    n = ctx.name
    return f'''{ctx.header}
"""Generated package of the {n} contract: models, contract index, wire names, typed facades.

The facades load on first access (``{n}Client`` from ``.facade``, ``{n}Server`` from
``.server``): a server imports no client code, a client no server code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import models, names
from .contract_index import CONTRACT, FINGERPRINT

if TYPE_CHECKING:
    from .facade import {n}Client
    from .server import {n}Server

__all__ = ["CONTRACT", "FINGERPRINT", "{n}Client", "{n}Server", "models", "names"]

_LAZY = {{"{n}Client": ".facade", "{n}Server": ".server"}}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {{__name__!r}} has no attribute {{name!r}}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
'''
