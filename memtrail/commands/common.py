"""What several commands share: one-line errors (exit code 2) and settings with a broker."""

from __future__ import annotations

from typing import NoReturn

import typer

from memtrail.core.settings import Settings, load_settings


def fail(command: str, message: str) -> NoReturn:
    """Print ``memtrail <command>: error: <message>`` on stderr and exit with code 2 (no traceback)."""
    typer.secho(f"memtrail {command}: error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def settings_with_broker(command: str, bootstrap: str | None, hint: str = "") -> Settings:
    """Shared settings, ``--bootstrap`` winning over MEMTRAIL_KAFKA__BOOTSTRAP; no broker is an error."""
    settings = load_settings()
    if bootstrap:
        settings.kafka.bootstrap = bootstrap
    if not settings.kafka.bootstrap:
        fail(
            command,
            "no Kafka bootstrap server: pass --bootstrap HOST:PORT or set MEMTRAIL_KAFKA__BOOTSTRAP" + hint,
        )
    return settings
