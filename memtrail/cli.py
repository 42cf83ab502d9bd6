"""The one console command, ``memtrail``: every component is a subcommand.

Each component registers its own commands from ``memtrail/commands/<component>.py``
(a ``register(app)`` function), so adding one touches no other component's file.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from memtrail import __version__
from memtrail.core.settings import SettingsError, load_settings

COMMAND_MODULES = (
    "memtrail.commands.up",  # memtrail up: everything in one process tree
    "memtrail.commands.broker",  # memtrail broker: the embedded local broker alone
    "memtrail.commands.sensor",  # memtrail sensor
    "memtrail.commands.worker",  # memtrail worker
    "memtrail.commands.patterns",  # memtrail patterns lint|test|stats|explain
    "memtrail.commands.sinks",  # memtrail sink ..., memtrail dashboards ..., memtrail wazuh ...
    "memtrail.commands.shim",  # memtrail shim
    "memtrail.commands.schemas",  # memtrail schemas export
    "memtrail.commands.audit",  # memtrail audit-webhook: Kubernetes audit events over HTTPS
)

app = typer.Typer(
    name="memtrail",
    help="Runtime security for containers: eBPF sensor → Kafka → Faust correlation → alerts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    log_level: str = typer.Option(
        None, "--log-level", help="DEBUG, INFO, ... (env MEMTRAIL_LOG_LEVEL, default INFO)"
    ),
) -> None:
    if log_level is None:
        try:
            log_level = load_settings().log_level
        except SettingsError:  # the command itself reports bad settings
            log_level = "INFO"
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as exc:
        if exc.name != _name:  # a real missing dependency inside the module: say so
            raise
        continue
    _module.register(app)


def main() -> None:
    from memtrail.core.settings import SettingsError

    try:
        app()
    except SettingsError as exc:  # bad MEMTRAIL_* environment: one line, exit 2, no traceback
        typer.secho(f"memtrail: error: invalid settings: {exc}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
