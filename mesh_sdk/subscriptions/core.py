"""What the feature halves of :class:`~mesh_sdk.client.MeshClient` share.

:class:`SubscriptionCore` is the base of every ``*_api`` mixin in this package: it sends
built-in requests (:meth:`~SubscriptionCore._builtin`), keeps the per-feature registries
consistent and reports background failures to ``"error"`` listeners. It only relies on the
client's ``_call`` (send a request, await its outcome; ``on_result`` runs inline in the reader
before the next frame), ``_spawn`` and a few attributes the client sets.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from pydantic import BaseModel

from mesh_sdk.protocol.contract import to_wire
from mesh_sdk.protocol.generated import CONTRACT as BUILTIN_CONTRACT

if TYPE_CHECKING:
    from mesh_sdk.events import CallbackDispatcher, EventEmitter
    from mesh_sdk.protocol.contract import ContractIndex
    from mesh_sdk.protocol.errors import ContractViolationError, MeshError

__all__ = [
    "COMMAND_NAMES",
    "SubscriptionCore",
    "identity",
    "string_ids",
    "succeeded",
    "write_strategy",
]

logger = logging.getLogger("mesh_sdk")

COMMAND_NAMES: Final = {
    spec.request_model: spec.name for spec in BUILTIN_CONTRACT.commands.values()
}
"""The built-in command of each generated request model."""


def identity(value: Any) -> Any:
    """Return ``value`` unchanged (the decoder when there is no model and no contract)."""
    return value


def succeeded(payload: Any) -> bool:
    """Whether a built-in response says ``success: true``."""
    return isinstance(payload, dict) and payload.get("success") is True


def string_ids(value: Any) -> list[str]:
    """The strings of a JSON list of connection ids (anything else is skipped)."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def write_strategy(strategy: str) -> Literal["replace", "merge", "deepMerge"]:
    """A write strategy as given: an unknown one is the server's to reject (``EVALIDATION``)."""
    return cast('Literal["replace", "merge", "deepMerge"]', strategy)


class SubscriptionCore(ABC):
    """Built-in requests, registries and error reporting; the base of every feature mixin.

    Each mixin hands ``self`` to the subscription objects it creates as their *owner* (the
    ``…Owner`` protocol beside each subscription class): what those objects call back.
    """

    # Provided by MeshClient.
    contract: ContractIndex | None
    _dispatcher: CallbackDispatcher
    _emitter: EventEmitter
    _queue_size: int

    @abstractmethod
    async def _call(
        self,
        command: str,
        payload: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        internal: bool = False,
        on_result: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Send one request and return its result (implemented by the client)."""

    @abstractmethod
    def _spawn(self, coro: Any, name: str) -> None:
        """Run ``coro`` as a tracked background task (implemented by the client)."""

    async def _builtin(
        self,
        request: BaseModel,
        *,
        internal: bool = False,
        on_result: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Send a built-in request built from its generated model (``model_construct``).

        The command is the model's in the built-in contract; the payload is the model's members
        as given, in schema order (:func:`~mesh_sdk.protocol.contract.to_wire`): nothing is
        validated or copied here, the server validates (protocol.md §7).
        """
        payload = to_wire(request)
        command = COMMAND_NAMES[type(request)]
        return await self._call(command, payload, internal=internal, on_result=on_result)

    @property
    def _strict_readers(self) -> bool:
        """Whether reads reject unknown members: only with a ``--strict-readers`` contract."""
        return self.contract is not None and self.contract.strict_readers

    # ----------------------------------------------------------------------------------------
    # Registries and reporting

    @staticmethod
    def _register(registry: dict[str, Any], key: str, sub: Any) -> None:
        old: Any = registry.get(key)
        registry[key] = sub
        if old is not None and old is not sub:
            old._end()

    @staticmethod
    def _unregister(registry: dict[str, Any], key: str, sub: Any) -> None:
        if registry.get(key) is sub:
            del registry[key]
        sub._end()

    def _drop(self, registry: dict[str, Any], key: str, sub: Any, error: MeshError) -> None:
        if key in registry and registry[key] is sub:
            del registry[key]
            sub._end()
        self._report(error)

    def _report_violation(self, violation: ContractViolationError) -> None:
        logger.warning("dropping what the server sent: %s", violation)
        self._emitter.emit("error", violation)

    def _report(self, error: MeshError) -> None:
        logger.warning("background subscription request failed: %s", error)
        self._emitter.emit("error", error)
