"""String templates of the generated ``names.py`` and ``server.py`` (the server facade).

``names.py`` holds the wire-name constants and the channel/record name builders; both facades
import it, so a server application gets them without importing the SDK's client side. The
server facade's runtime lives in :mod:`mesh_server.facade`. Same conventions as
:mod:`codegen.templates`: plain f-strings, values embedded with ``repr``, reformatted by black.
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen.templates import Context, doc_text

__all__ = ["Family", "names", "server"]


@dataclass(frozen=True)
class Family:
    """One channel or record family as the templates need it."""

    method: str
    """snake_case name (``room_topic``)."""
    cls: str
    """PascalCase name (``RoomTopic``)."""
    title: str
    """Model class name."""
    params: list[str]
    """Template parameters in template order."""
    template: str
    """Name template (``topic:{room}``)."""
    writable: bool = False


def _kwargs(params: list[str]) -> str:
    return "".join(f"{p}: str, " for p in params)


def _kw_only(params: list[str]) -> str:
    return ", *, " + ", ".join(f"{p}: str" for p in params) if params else ""


def _call(params: list[str]) -> str:
    return ", ".join(f"{p}={p}" for p in params)


def _builder(kind: str, family: Family, index: int) -> str:
    sig = "*, " + _kwargs(family.params) if family.params else ""
    noun, method = (
        ("channel name", "build_name") if kind == "channel" else ("record id", "build_id")
    )
    table = "channels" if kind == "channel" else "records"
    prefix = "channel_name" if kind == "channel" else "record_id"
    return f'''
def {prefix}_{family.method}({sig}) -> str:
    """Return the {noun} ``{family.template}`` for the given parameters.

    Raises:
        ValueError: The result does not match the contract's pattern.
    """
    return CONTRACT.{table}[{index}].{method}({_call(family.params)})

'''


def names(
    ctx: Context,
    commands: list[tuple[str, str]],
    channels: list[Family],
    records: list[Family],
) -> str:
    """Render ``names.py``: ``COMMAND_*``/``CHANNEL_*``/``RECORD_*`` constants and builders.

    Args:
        ctx: Shared template values.
        commands: ``(snake name, wire name)`` per command.
        channels: Channel families in contract order.
        records: Record families in contract order.
    """
    exports: list[str] = []
    consts: list[str] = []
    for method, wire in commands:
        const = f"COMMAND_{method.upper()}"
        exports.append(const)
        consts.append(f'{const}: Final = {wire!r}\n"""Wire name of ``{wire}``."""\n')
    for kind, families in (("CHANNEL", channels), ("RECORD", records)):
        for family in families:
            const = f"{kind}_{family.method.upper()}"
            exports.append(const)
            consts.append(
                f"{const}: Final = {family.template!r}\n"
                f'"""{kind.capitalize()} name template of the {family.cls} family."""\n'
            )
    builders = [_builder("channel", f, i) for i, f in enumerate(channels)]
    builders += [_builder("record", f, i) for i, f in enumerate(records)]
    exports += [f"channel_name_{f.method}" for f in channels]
    exports += [f"record_id_{f.method}" for f in records]
    return f'''{ctx.header}
"""Wire names of {ctx.name}: command names, name templates and name builders (no client)."""

from __future__ import annotations

from typing import Final

from .contract_index import CONTRACT

__all__ = [{", ".join(repr(e) for e in sorted(exports))}]

{"".join(consts)}
{"".join(builders)}'''


def _command(method: str, wire: str, req: str, resp: str, description: str) -> str:
    doc = f"``{wire}``: {doc_text(description)}" if description else f"``{wire}``."
    return f'''    def {method}(
        self,
        handler: CommandHandler[models.{req}, models.{resp}],
        /,
        *,
        middlewares: Sequence[Middleware] = (),
    ) -> CommandHandler[models.{req}, models.{resp}]:
        """Register the handler of {doc}

        Use as a decorator (``@app.commands.{method}``) or call it with ``middlewares``.
        """
        return self._register({wire!r}, handler, middlewares)

'''


def _channel_family(n: str, family: Family) -> str:
    f = family
    return f'''
class {n}{f.cls}Channel(ChannelFamily[models.{f.title}]):
    """Channel family ``{f.template}`` (messages: :class:`models.{f.title}`)."""

    __slots__ = ()

    def channel_name(self{_kw_only(f.params)}) -> str:
        """Return the channel name ``{f.template}`` for the given parameters."""
        return channel_name_{f.method}({_call(f.params)})

    async def publish(
        self, *, {_kwargs(f.params)} message: models.{f.title}, history: int = 0
    ) -> None:
        """Publish ``message`` on ``{f.template}``; keep the ``history`` most recent messages."""
        await self._publish(channel_name_{f.method}({_call(f.params)}), message, history)

'''


def _record_family(n: str, family: Family) -> str:
    f = family
    access = "clients may write" if f.writable else "read-only for clients"
    return f'''
class {n}{f.cls}Record(RecordFamily[models.{f.title}]):
    """Record family ``{f.template}`` (values: :class:`models.{f.title}`; {access})."""

    __slots__ = ()

    def record_id(self{_kw_only(f.params)}) -> str:
        """Return the record id ``{f.template}`` for the given parameters."""
        return record_id_{f.method}({_call(f.params)})

    async def get(self{_kw_only(f.params)}) -> tuple[models.{f.title} | None, int]:
        """Return ``(value, version)`` of ``{f.template}``; ``(None, 0)`` when absent."""
        return await self._get(record_id_{f.method}({_call(f.params)}))

    async def publish(
        self, *, {_kwargs(f.params)} value: models.{f.title}, expected_version: int | None = None
    ) -> None:
        """Replace ``{f.template}``; with ``expected_version``, only if still at that version.

        Raises:
            ConflictError: The record is at another version (``ECONFLICT``); nothing stored.
        """
        await self._publish(record_id_{f.method}({_call(f.params)}), value, expected_version)

    async def update(
        self, *, {_kwargs(f.params)} fn: RecordUpdater[models.{f.title}]
    ) -> tuple[models.{f.title}, int]:
        """Atomically replace ``{f.template}`` by ``fn(current)``, re-run on conflicts.

        Returns:
            The committed value and its version.
        """
        return await self._update(record_id_{f.method}({_call(f.params)}), fn)

    async def delete(self{_kw_only(f.params)}) -> None:
        """Delete ``{f.template}``; subscribers get ``mesh/record-deleted``."""
        await self._delete(record_id_{f.method}({_call(f.params)}))

'''


def _group(n: str, kind: str, families: list[Family], index_name: str) -> str:
    cls = f"{n}Server{kind}s"
    slots = ", ".join(repr(f.method) for f in families)
    slots = f"({slots},)" if families else "()"
    lines = "".join(
        f"        self.{f.method} = {n}{f.cls}{kind}(server, CONTRACT.{index_name}[{i}])\n"
        for i, f in enumerate(families)
    )
    body = lines or "        del server  # the contract declares none\n"
    return f'''
class {cls}:
    """The {kind.lower()} families of {n}."""

    __slots__ = {slots}

    def __init__(self, server: MeshServer) -> None:
{body}
'''


def server(
    ctx: Context,
    commands: list[tuple[str, str, str, str, str]],
    channels: list[Family],
    records: list[Family],
) -> str:
    """Render ``server.py``: the typed server facade.

    Args:
        ctx: Shared template values.
        commands: ``(snake name, wire name, request model, response model, description)``.
        channels: Channel families in contract order.
        records: Record families in contract order.
    """
    n = ctx.name
    imports = [f"channel_name_{f.method}" for f in channels]
    imports += [f"record_id_{f.method}" for f in records]
    parts = [
        f'''{ctx.header}
"""Typed server facade of {n}: one delegating call per stub into :mod:`mesh_server.facade`."""

from __future__ import annotations

from collections.abc import Sequence

from mesh_server import MeshServer
from mesh_server.facade import (
    ChannelFamily,
    CommandHandler,
    CommandRegistry,
    FacadeServer,
    RecordFamily,
    RecordUpdater,
)
from mesh_server.middleware import Middleware

from . import models
from .contract_index import CONTRACT
'''
    ]
    if imports:
        parts.append(f"from .names import {', '.join(sorted(imports))}\n")
    parts.append(
        f'\n\nclass {n}ServerCommands(CommandRegistry):\n    """Typed handlers of {n}."""\n\n'
    )
    parts.append("    __slots__ = ()\n\n")
    parts.extend(_command(*c) for c in commands)
    parts.extend(_channel_family(n, f) for f in channels)
    parts.extend(_record_family(n, f) for f in records)
    parts.append(_group(n, "Channel", channels, "channels"))
    parts.append(_group(n, "Record", records, "records"))
    exports = [f"{n}Server", f"{n}ServerChannels", f"{n}ServerCommands", f"{n}ServerRecords"]
    exports += [f"{n}{f.cls}Channel" for f in channels] + [f"{n}{f.cls}Record" for f in records]
    parts.append(
        f'''
class {n}Server(FacadeServer):
    """Typed facade of {n} over a :class:`mesh_server.MeshServer`, bound to the contract."""

    def __init__(self, server: MeshServer) -> None:
        super().__init__(server, CONTRACT)
        self.commands = {n}ServerCommands(server)
        self.channels = {n}ServerChannels(server)
        self.records = {n}ServerRecords(server)


__all__ = [{", ".join(repr(e) for e in sorted(exports))}]
'''
    )
    return "".join(parts)
