"""``python -m codegen CONTRACT_DIR --out PACKAGE_DIR [--check] [--lang python|ts]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codegen.cli import codegen_command

app = typer.Typer(add_completion=False)


@app.command()
def main(
    contract_dir: Annotated[Path, typer.Argument(help="Contract directory.")],
    out: Annotated[Path, typer.Option("--out", help="Generated package directory.")],
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 on drift.")] = False,
    lang: Annotated[str, typer.Option("--lang", help="python or ts.")] = "python",
) -> None:
    """Generate typed bindings from a contract (Python package, or TypeScript with --lang ts)."""
    raise typer.Exit(codegen_command(contract_dir, out, check, lang=lang))


if __name__ == "__main__":
    app()
