"""The extra sources' commands: Kubernetes audit events and network trails.

``memtrail audit-webhook``: receive Kubernetes audit events (webhook backend) over HTTPS.
``memtrail trails``: check trail lists (shipped and custom) and look addresses up in them.
"""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from memtrail.commands.common import settings_with_broker
from memtrail.core.kafka import BrokerUnreachable


def register(app: typer.Typer) -> None:
    @app.command("audit-webhook")
    def audit_webhook(
        host: str = typer.Option(None, help="Listen address, default 0.0.0.0"),
        port: int = typer.Option(None, help="Listen port, default 9443"),
        path: str = typer.Option(None, help="URL path the API server posts to, default /k8s-audit"),
        cert: Path = typer.Option(None, "--cert", help="PEM server certificate (MEMTRAIL_AUDIT_CERT_FILE)"),
        key: Path = typer.Option(None, "--key", help="PEM private key (MEMTRAIL_AUDIT_KEY_FILE)"),
        client_ca: Path = typer.Option(
            None,
            "--client-ca",
            help="Require client certificates signed by this CA (MEMTRAIL_AUDIT_CLIENT_CA_FILE)",
        ),
        self_signed: bool = typer.Option(
            False, "--self-signed", help="Generate a throwaway certificate (local use)"
        ),
        insecure_no_auth: bool = typer.Option(
            False,
            "--insecure-no-auth",
            help="Accept posts without a client certificate or bearer token (local use only)",
        ),
        cluster_name: str = typer.Option(
            None, "--cluster-name", help="Written as host on every event, default: the host name"
        ),
        bootstrap: str = typer.Option(
            None, "--bootstrap", help="Kafka host:port (env MEMTRAIL_KAFKA__BOOTSTRAP)"
        ),
    ) -> None:
        """Accept audit.k8s.io/v1 EventLists and publish each event to memtrail.k8s.audit."""
        from sensors.k8s_audit.server import ConfigError, build_server
        from sensors.k8s_audit.settings import AuditWebhookSettings

        settings = settings_with_broker("audit-webhook", bootstrap, " (`memtrail broker` runs a local one)")
        overrides = {
            k: v
            for k, v in {
                "host": host,
                "port": port,
                "path": path,
                "cert_file": cert,
                "key_file": key,
                "client_ca_file": client_ca,
                "cluster_name": cluster_name,
                "insecure_no_auth": insecure_no_auth or None,
            }.items()
            if v is not None
        }
        try:
            cfg = AuditWebhookSettings(**overrides)  # type: ignore[arg-type]
            server = build_server(settings, cfg, make_self_signed=self_signed)
        except (ConfigError, ValidationError, BrokerUnreachable) as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"audit webhook on https://{cfg.host}:{cfg.port}{cfg.path} → {settings.topics.k8s_audit}")
        try:
            server.run()
        except OSError as exc:  # e.g. the port is in use
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None

    @app.command("trails")
    def trails(
        directory: list[Path] = typer.Option(
            [],
            "--dir",
            help="Trail directory or file, repeatable (default: MEMTRAIL_TRAILS_DIRS + _CUSTOM_DIRS)",
        ),
        match: list[str] = typer.Option([], "--match", help="An IP address or domain to look up, repeatable"),
    ) -> None:
        """Load trail lists, print each with its source and size, report bad lines (exit 1)."""
        from streams.trails import TrailSettings, TrailStore

        store = TrailStore(directory or TrailSettings().all_dirs())
        for tl in store.lists:
            typer.echo(
                f"{tl.name:24} {len(tl.entries):7} entries  {tl.category:22} {tl.severity:8} {tl.origin}"
            )
            typer.echo(f"{'':24} source: {tl.source}")
        for value in match:
            hit = store.matcher.match_ip(value) or store.matcher.match_domain(value)
            if hit is None:
                typer.echo(f"{value}: not listed")
            else:
                typer.echo(
                    f"{value}: {hit.entry.indicator} on {hit.list_name} ({hit.entry.info or 'no info'})"
                )
        for err in store.errors:
            typer.secho(f"error: {err}", fg="red", err=True)
        if store.errors:
            raise typer.Exit(1)
