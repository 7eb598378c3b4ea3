"""``python -m codegen CONTRACT_DIR --out PACKAGE_DIR [--check] [--lang python|ts]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codegen.deps import MissingDependencyError, import_tool

# Plain (non-rich) help: it shows ``--check`` as a flag, not ``<bool>``.
app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command()
def main(
    contract_dir: Annotated[Path, typer.Argument(help="Contract directory.")],
    out: Annotated[Path, typer.Option("--out", help="Generated package directory.")],
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 on drift.")] = False,
    lang: Annotated[str, typer.Option("--lang", help="python or ts.")] = "python",
) -> None:
    """Generate typed bindings from a contract (Python package, or TypeScript with --lang ts)."""
    try:
        cli = import_tool("codegen.cli")
    except MissingDependencyError as exc:
        typer.echo(str(exc))
        raise typer.Exit(3) from None
    raise typer.Exit(cli.codegen_command(contract_dir, out, check, lang=lang))


if __name__ == "__main__":
    app()
