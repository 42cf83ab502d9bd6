"""``memtrail shim``: the security-events REST API and page (Portainer companion)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from pydantic import ValidationError

from memtrail.settings import load_settings


def register(app: typer.Typer) -> None:
    @app.command("shim")
    def shim(
        host: str = typer.Option("0.0.0.0", envvar="MEMTRAIL_SHIM_HOST", help="Listen address"),
        port: int = typer.Option(8080, envvar="MEMTRAIL_SHIM_PORT", help="Listen port"),
        db: str | None = typer.Option(
            None,
            "--db",
            envvar="MEMTRAIL_SHIM_DB",
            help="SQLite file (or sqlite:///path) or postgresql://user:pw@host/db "
            "[default: ~/.local/state/memtrail/shim.sqlite3]",
        ),
        token: str | None = typer.Option(
            None,
            "--token",
            envvar="MEMTRAIL_SHIM_TOKEN",
            help="Read token (Bearer or X-API-Key); without any credential one-time read and admin "
            "tokens are generated and printed",
        ),
        admin_token: str | None = typer.Option(
            None,
            "--admin-token",
            envvar="MEMTRAIL_SHIM_ADMIN_TOKEN",
            help="Admin token: deletes events, changes patterns, self-test, audit log (must differ from --token)",
        ),
        basic_user: str | None = typer.Option(None, envvar="MEMTRAIL_SHIM_BASIC_USER"),
        basic_password: str | None = typer.Option(None, envvar="MEMTRAIL_SHIM_BASIC_PASSWORD"),
        insecure_no_auth: bool = typer.Option(
            False, "--insecure-no-auth", help="Serve the API without any credential (local use only)"
        ),
        cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allowed CORS origin, repeatable"),
        portainer_url: str | None = typer.Option(None, envvar="MEMTRAIL_SHIM_PORTAINER_URL"),
        portainer_token: str | None = typer.Option(
            None, envvar="MEMTRAIL_SHIM_PORTAINER_TOKEN", help="Portainer access token (X-API-Key)"
        ),
        opensearch_url: str | None = typer.Option(
            None,
            envvar="MEMTRAIL_SHIM_OPENSEARCH_URL",
            help="Also pull alerts indexed by the OpenSearch sink (history) into the store",
        ),
        group_id: str | None = typer.Option(
            None, envvar="MEMTRAIL_SHIM_GROUP_ID", help="Kafka consumer group [default: memtrail-shim]"
        ),
        no_consume: bool = typer.Option(False, "--no-consume", help="Do not consume alerts/heartbeats"),
        bootstrap: str | None = typer.Option(
            None, "--bootstrap", help="Kafka bootstrap servers (default: MEMTRAIL_KAFKA__BOOTSTRAP)"
        ),
        static_dir: Path | None = typer.Option(None, hidden=True),
    ) -> None:
        """Serve /api/v1/security-events, the collector status, patterns and the page at /."""
        from sinks.shim.config import ShimSettings
        from sinks.shim.server import generate_token, make_server
        from sinks.shim.store import StoreError

        generated = None
        if token is None and "MEMTRAIL_SHIM_TOKEN" in os.environ:
            token = os.environ["MEMTRAIL_SHIM_TOKEN"]  # set but empty: refused below, never replaced
        if admin_token is None and "MEMTRAIL_SHIM_ADMIN_TOKEN" in os.environ:
            admin_token = os.environ["MEMTRAIL_SHIM_ADMIN_TOKEN"]
        env_insecure = os.environ.get("MEMTRAIL_SHIM_INSECURE_NO_AUTH", "").lower() in ("1", "true", "yes")
        no_credential = token is None and basic_password is None and admin_token is None
        if no_credential and not (insecure_no_auth or env_insecure):
            # Like Jupyter: no credential configured → strong one-time tokens, printed once.
            # An explicitly empty or default secret is still refused by ShimSettings.
            generated = token = generate_token()
            admin_token = generate_token()
        overrides: dict[str, object] = {
            "host": host,
            "port": port,
        }
        if insecure_no_auth:
            overrides["insecure_no_auth"] = True
        if no_consume:
            overrides["consume"] = False
        for name, value in (
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
        ):
            if value is not None:
                overrides[name] = value
        if cors_origin:
            overrides["cors_origins"] = cors_origin
        try:
            cfg = ShimSettings(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(x) for x in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                typer.secho(f"error: {where + ': ' if where else ''}{msg}", fg="red", err=True)
            raise typer.Exit(2) from exc
        settings = load_settings()
        if bootstrap:
            settings.kafka.bootstrap = bootstrap
        if cfg.insecure_no_auth and host not in ("127.0.0.1", "localhost", "::1"):
            typer.secho(f"warning: no authentication and listening on {host}", fg="yellow", err=True)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        typer.echo(f"memtrail shim: http://{shown}:{port}/ (store: {cfg.db.split('@')[-1]})", err=True)
        if generated:
            # The page link carries the admin token: whoever started the shim is its admin.
            typer.echo(
                "memtrail shim: no MEMTRAIL_SHIM_TOKEN/--token given; tokens for this run: "
                f"read {generated}, admin {admin_token}\n"
                f"memtrail shim: open http://{shown}:{port}/#token={admin_token}",
                err=True,
            )
        try:
            server = make_server(cfg, settings)
        except StoreError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from exc
        server.run()
