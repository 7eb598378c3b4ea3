"""MkDocs hooks for the mesh-py site.

* The ``mesh`` command line reference is rendered from the Typer app itself: Typer's own Markdown
  generator (the one behind ``typer MODULE utils docs``) is called in-process, so the page always
  matches the options ``mesh --help`` shows, and a broken CLI fails the build.
* The docstrings use Sphinx roles (``:class:`~mesh_server.MeshServer```), which Markdown renders
  literally; they are shown as plain code (``MeshServer``), shortened where the role asks for it.
"""

from __future__ import annotations

import re
from typing import Any

import typer
import typer.cli

MARKER = "<!-- mesh-cli-reference -->"

# What a Sphinx role becomes once Markdown has rendered the docstring: the role name, a colon,
# then the target as inline code.
_SPHINX_ROLE = re.compile(r":(?:class|meth|attr|mod|func|data|exc|obj):<code>(~?)([^<]*)</code>")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace :data:`MARKER` with the generated reference of ``mesh_server.cli.app``."""
    if MARKER not in markdown:
        return markdown
    from mesh_server.cli import app

    command = typer.main.get_command(app)
    generated = typer.cli.get_docs_for_click(
        obj=command, ctx=typer.Context(command), name="mesh", indent=1
    )
    return markdown.replace(MARKER, generated.strip())


def on_page_content(html: str, **kwargs: Any) -> str:
    """Show Sphinx roles in rendered docstrings as plain code."""
    return _SPHINX_ROLE.sub(_role_to_code, html)


def _role_to_code(match: re.Match[str]) -> str:
    short, target = match.groups()
    # "~a.b.C" shows "C" (Sphinx's convention); "a.b.C" stays in full.
    return f"<code>{target.rsplit('.', 1)[-1] if short else target}</code>"
