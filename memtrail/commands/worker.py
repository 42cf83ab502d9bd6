"""``memtrail worker``: one stream-tier worker (Faust). Run several against one Kafka to scale."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError

from memtrail.commands.common import settings_with_broker
from memtrail.core.kafka import BrokerUnreachable


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        bootstrap: str = typer.Option(
            None, "--bootstrap", help="Kafka host:port (env MEMTRAIL_KAFKA__BOOTSTRAP)"
        ),
        web_port: int = typer.Option(None, "--web-port", help="Faust web port (each worker its own) [6066]"),
        metrics_port: int = typer.Option(None, "--metrics-port", help="Prometheus port, 0 = off [9102]"),
        group_id: str = typer.Option(
            None, "--group-id", help="Consumer group shared by workers [memtrail-stream]"
        ),
        grouping_window: float = typer.Option(None, "--grouping-window", help="Seconds [60]"),
        incident_window: float = typer.Option(
            None,
            "--incident-window",
            help="Seconds to merge one process's alerts on one trigger, 0 = off [5]",
        ),
        container_join: str = typer.Option(
            None,
            "--container-join",
            help="table: Faust GlobalTable over the containers topic; reader: a plain consumer thread [table]",
        ),
    ) -> None:
        """Consume raw events, enrich, correlate with the pattern library, publish alerts."""
        from streams.config import StreamOptions
        from streams.worker import run_worker

        settings = settings_with_broker(
            "worker", bootstrap, " (`memtrail up` starts a local broker and passes it)"
        )
        overrides: dict[str, Any] = {
            k: v
            for k, v in {
                "web_port": web_port,
                "metrics_port": metrics_port,
                "group_id": group_id,
                "grouping_window_s": grouping_window,
                "incident_window_s": incident_window,
                "container_join": container_join,
            }.items()
            if v is not None
        }
        try:
            opts = StreamOptions(**overrides)
        except ValidationError as exc:  # a bad option or MEMTRAIL_STREAM_* value: one line, no traceback
            errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            typer.secho(f"memtrail worker: error: {errs}", fg="red", err=True)
            raise typer.Exit(2) from None
        try:
            run_worker(settings, opts)
        except BrokerUnreachable as exc:
            typer.secho(f"memtrail worker: error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # e.g. a port already in use
            typer.secho(f"memtrail worker: error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
