"""``memtrail shim``: the security-events REST API and page (Portainer companion)."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from memtrail.core.settings import load_settings


def register(app: typer.Typer) -> None:
    @app.command("shim")
    def shim(
        host: str | None = typer.Option(
            None, help="Listen address (env MEMTRAIL_SHIM_HOST, default 0.0.0.0)"
        ),
        port: int | None = typer.Option(None, help="Listen port (env MEMTRAIL_SHIM_PORT, default 8080)"),
        db: str | None = typer.Option(
            None,
            "--db",
            help="SQLite file (or sqlite:///path) or postgresql://user:pw@host/db "
            "(env MEMTRAIL_SHIM_DB, default ~/.local/state/memtrail/shim.sqlite3)",
        ),
        token: str | None = typer.Option(
            None,
            "--token",
            help="Read token (Bearer or X-API-Key; env MEMTRAIL_SHIM_TOKEN); without any credential "
            "one-time read and admin tokens are generated and printed",
        ),
        admin_token: str | None = typer.Option(
            None,
            "--admin-token",
            help="Admin token: deletes events, changes patterns, self-test, audit log "
            "(env MEMTRAIL_SHIM_ADMIN_TOKEN; must differ from --token)",
        ),
        basic_user: str | None = typer.Option(None, help="(env MEMTRAIL_SHIM_BASIC_USER)"),
        basic_password: str | None = typer.Option(None, help="(env MEMTRAIL_SHIM_BASIC_PASSWORD)"),
        insecure_no_auth: bool = typer.Option(
            False, "--insecure-no-auth", help="Serve the API without any credential (local use only)"
        ),
        cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allowed CORS origin, repeatable"),
        portainer_url: str | None = typer.Option(None, help="(env MEMTRAIL_SHIM_PORTAINER_URL)"),
        portainer_token: str | None = typer.Option(
            None, help="Portainer access token, X-API-Key (env MEMTRAIL_SHIM_PORTAINER_TOKEN)"
        ),
        opensearch_url: str | None = typer.Option(
            None,
            help="Also pull alerts indexed by the OpenSearch sink (history) into the store "
            "(env MEMTRAIL_SHIM_OPENSEARCH_URL)",
        ),
        group_id: str | None = typer.Option(
            None, help="Kafka consumer group (env MEMTRAIL_SHIM_GROUP_ID, default memtrail-shim)"
        ),
        no_consume: bool = typer.Option(False, "--no-consume", help="Do not consume alerts/heartbeats"),
        bootstrap: str | None = typer.Option(
            None, "--bootstrap", help="Kafka bootstrap servers (env MEMTRAIL_KAFKA__BOOTSTRAP)"
        ),
        static_dir: Path | None = typer.Option(None, hidden=True),
    ) -> None:
        """Serve /api/v1/security-events, the collector status, patterns and the page at /."""
        from sinks.shim.config import ShimSettings
        from sinks.shim.server import make_server
        from sinks.shim.store import StoreError

        # Only what was given on the command line; ShimSettings reads the rest from the environment.
        given: dict[str, object] = {
            name: value
            for name, value in (
                ("host", host),
                ("port", port),
                ("db", db),
                ("group_id", group_id),
                ("token", token),
                ("admin_token", admin_token),
                ("basic_user", basic_user),
                ("basic_password", basic_password),
                ("portainer_url", portainer_url),
                ("portainer_token", portainer_token),
                ("opensearch_url", opensearch_url),
                ("static_dir", static_dir),
                ("insecure_no_auth", insecure_no_auth or None),
                ("consume", False if no_consume else None),
                ("cors_origins", cors_origin or None),
            )
            if value is not None
        }
        try:
            cfg = ShimSettings(generate_tokens=True, **given)  # type: ignore[arg-type]
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(x) for x in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                typer.secho(f"error: {where + ': ' if where else ''}{msg}", fg="red", err=True)
            raise typer.Exit(2) from exc
        settings = load_settings()
        if bootstrap:
            settings.kafka.bootstrap = bootstrap
        if cfg.insecure_no_auth and cfg.host not in ("127.0.0.1", "localhost", "::1"):
            typer.secho(f"warning: no authentication and listening on {cfg.host}", fg="yellow", err=True)
        shown = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
        typer.echo(f"memtrail shim: http://{shown}:{cfg.port}/ (store: {cfg.db.split('@')[-1]})", err=True)
        if cfg.tokens_generated:
            # The page link carries the admin token: whoever started the shim is its admin.
            typer.echo(
                "memtrail shim: no MEMTRAIL_SHIM_TOKEN/--token given; tokens for this run: "
                f"read {cfg.token}, admin {cfg.admin_token}\n"
                f"memtrail shim: open http://{shown}:{cfg.port}/#token={cfg.admin_token}",
                err=True,
            )
        try:
            server = make_server(cfg, settings)
        except StoreError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        server.run()
