"""``memtrail schemas export``: write the contract models' JSON Schema to schemas/json/."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Event and alert schemas.", no_args_is_help=True)

    @sub.command("export")
    def export() -> None:
        """Write schemas/json/*.schema.json from the pydantic models."""
        from schemas.export import main

        main()

    app.add_typer(sub, name="schemas")
