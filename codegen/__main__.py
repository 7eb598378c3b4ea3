"""``python -m codegen CONTRACT_DIR --out DIR [--check] [--lang python|ts] [--strict-readers]``."""

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
    strict_readers: Annotated[
        bool | None,
        typer.Option(
            "--strict-readers/--tolerant-readers",
            help="Python: clients reject unknown members of what they read (default: as "
            "recorded in OUT, else tolerant).",
        ),
    ] = None,
) -> None:
    """Generate typed bindings from a contract (Python package, or TypeScript with --lang ts)."""
    try:
        cli = import_tool("codegen.cli")
    except MissingDependencyError as exc:
        typer.echo(str(exc))
        raise typer.Exit(3) from None
    code = cli.codegen_command(contract_dir, out, check, lang=lang, strict_readers=strict_readers)
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
