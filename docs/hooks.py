"""MkDocs hook: renders the ``mesh`` command line reference from the Typer app itself.

Typer's own Markdown generator (the one behind ``typer MODULE utils docs``) is called in-process,
so the page always matches the options ``mesh --help`` shows, and a broken CLI fails the build.
"""

from __future__ import annotations

from typing import Any

import typer
import typer.cli

MARKER = "<!-- mesh-cli-reference -->"


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
