"""Import codegen modules with a one-line hint when a codegen-time dependency is missing.

Only the standard library is imported here, so callers (``mesh`` and ``python -m codegen``) can
import this module on a plain ``pip install mesh-py`` and report what is missing instead of a
traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

__all__ = ["CODEGEN_DEPENDENCIES", "MissingDependencyError", "import_tool"]

CODEGEN_DEPENDENCIES: Final = frozenset(
    {"jsonschema", "datamodel_code_generator", "black", "isort"}
)
"""Top-level modules of the ``codegen`` extra (pyproject.toml; a test keeps them in step)."""


class MissingDependencyError(ImportError):
    """A codegen-time dependency is not installed; ``str()`` is the one-line install hint."""

    def __init__(self, module: str) -> None:
        self.module = module
        super().__init__(
            f"{module} is not installed; codegen tools need the codegen extra: "
            "pip install 'mesh-py[codegen]'"
        )


def import_tool(name: str) -> ModuleType:
    """Import ``name`` (a ``codegen`` module).

    Raises:
        MissingDependencyError: A module of the codegen extra is missing.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top in CODEGEN_DEPENDENCIES:
            raise MissingDependencyError(top) from exc
        raise
