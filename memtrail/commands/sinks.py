"""``memtrail sink opensearch|wazuh``, ``memtrail dashboards import``, ``memtrail wazuh rules``."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import typer

from memtrail.commands.common import settings_with_broker
from memtrail.core.kafka import BrokerUnreachable, check_reachable, ensure_topics
from memtrail.core.metrics import DEFAULT_PORTS, serve_metrics
from memtrail.core.settings import Settings, load_settings

log = logging.getLogger(__name__)


def _settings(command: str, bootstrap: str | None) -> Settings:
    """Shared settings with a reachable broker and the topics in place."""
    settings = settings_with_broker(command, bootstrap)
    try:
        check_reachable(settings.kafka)
        ensure_topics(settings)
    except BrokerUnreachable as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    return settings


def _run(sink: Any, settings: Settings, port: int, batch_size: int, group: str | None) -> None:
    from sinks.base import SinkRunner

    runner = SinkRunner(sink, settings, group_id=group, batch_size=batch_size)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve_metrics(port, ready=lambda: runner.ready) if port >= 0 else None
    try:
        runner.run(stop)
    except RuntimeError as exc:  # a destination refusing for good (e.g. set-up privileges)
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from exc
    finally:
        if server is not None:
            server.shutdown()


def _overrides(**kwargs: Any) -> dict[str, Any]:
    """Only the options given on the command line, so environment settings still apply."""
    return {k: v for k, v in kwargs.items() if v is not None}


def _opensearch_settings(no_verify: bool, **given: Any) -> Any:
    """OpenSearchSettings from the environment with the given options on top; exit 2 when invalid."""
    from pydantic import ValidationError

    from sinks.opensearch.config import OpenSearchSettings

    try:
        return OpenSearchSettings(**_overrides(**given, verify_certs=False if no_verify else None))
    except ValidationError as exc:
        typer.secho(f"error: {exc.errors()[0]['msg']}", fg="red", err=True)
        raise typer.Exit(2) from exc


def register(app: typer.Typer) -> None:
    sink_app = typer.Typer(
        help="Deliver alerts from the alerts topic to a destination.", no_args_is_help=True
    )
    dash_app = typer.Typer(help="OpenSearch Dashboards content.", no_args_is_help=True)
    wazuh_app = typer.Typer(help="Wazuh content generated from the pattern library.", no_args_is_help=True)
    app.add_typer(sink_app, name="sink")
    app.add_typer(dash_app, name="dashboards")
    app.add_typer(wazuh_app, name="wazuh")

    @sink_app.command("opensearch")
    def sink_opensearch(
        url: str = typer.Option(None, help="e.g. https://opensearch:9200"),
        user: str = typer.Option(None),
        password: str = typer.Option(None),
        api_key: str = typer.Option(None),
        ca_certs: Path = typer.Option(None, exists=True, dir_okay=False),
        no_verify: bool = typer.Option(False, "--no-verify", help="Do not verify TLS certificates"),
        retention_days: int = typer.Option(None, help="ISM: delete daily indices older than this"),
        index_prefix: str = typer.Option(None),
        setup: bool = typer.Option(
            None, "--setup/--no-setup", help="Install index template and ISM policy [default: setup]"
        ),
        bootstrap: str = typer.Option(None, help="Kafka bootstrap (default: MEMTRAIL_KAFKA__BOOTSTRAP)"),
        batch_size: int = typer.Option(500, min=1),
        group: str = typer.Option(None, help="Consumer group (default memtrail-sink-opensearch)"),
        metrics_port: int = typer.Option(DEFAULT_PORTS["sink-opensearch"], help="-1 disables /metrics"),
    ) -> None:
        """Index alerts into daily OpenSearch indices (exactly once per alert id)."""
        from sinks.opensearch.sink import OpenSearchSink

        cfg = _opensearch_settings(
            no_verify,
            url=url,
            user=user,
            password=password,
            api_key=api_key,
            ca_certs=ca_certs,
            retention_days=retention_days,
            index_prefix=index_prefix,
            setup=setup,
        )
        _run(OpenSearchSink(cfg), _settings("sink opensearch", bootstrap), metrics_port, batch_size, group)

    @sink_app.command("wazuh")
    def sink_wazuh(
        mode: str = typer.Option(None, help="api | socket | file"),
        url: str = typer.Option(None, help="Manager API, e.g. https://wazuh:55000"),
        user: str = typer.Option(None),
        password: str = typer.Option(None),
        ca_certs: Path = typer.Option(None, exists=True, dir_okay=False),
        no_verify: bool = typer.Option(False, "--no-verify", help="Do not verify TLS certificates"),
        socket_path: Path = typer.Option(None),
        file_path: Path = typer.Option(None),
        requests_per_minute: int = typer.Option(None, help="API rate limit (Wazuh default 30)"),
        bootstrap: str = typer.Option(None, help="Kafka bootstrap (default: MEMTRAIL_KAFKA__BOOTSTRAP)"),
        batch_size: int = typer.Option(500, min=1),
        group: str = typer.Option(None, help="Consumer group (default memtrail-sink-wazuh-<mode>)"),
        metrics_port: int = typer.Option(DEFAULT_PORTS["sink-wazuh"], help="-1 disables /metrics"),
    ) -> None:
        """Send alerts to Wazuh (at least once) through the API, the analysisd socket or a file."""
        from pydantic import ValidationError

        from sinks.wazuh.config import WazuhSettings

        try:
            cfg = WazuhSettings(
                **_overrides(
                    mode=mode,
                    url=url,
                    user=user,
                    password=password,
                    ca_certs=ca_certs,
                    socket_path=socket_path,
                    file_path=file_path,
                    requests_per_minute=requests_per_minute,
                    verify_certs=False if no_verify else None,
                ),
            )
            sink = make_wazuh_sink(cfg)
        except (ValidationError, ValueError) as exc:
            msg = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            typer.secho(f"error: {msg}", fg="red", err=True)
            raise typer.Exit(2) from exc
        _run(sink, _settings("sink wazuh", bootstrap), metrics_port, batch_size, group)

    @dash_app.command("import")
    def dashboards_import(
        url: str = typer.Argument(..., help="OpenSearch Dashboards URL, e.g. http://dashboards:5601"),
        user: str = typer.Option(None, help="(env MEMTRAIL_OPENSEARCH_USER)"),
        password: str = typer.Option(None, help="(env MEMTRAIL_OPENSEARCH_PASSWORD)"),
        api_key: str = typer.Option(None, help="(env MEMTRAIL_OPENSEARCH_API_KEY)"),
        ca_certs: Path = typer.Option(None, exists=True, dir_okay=False),
        no_verify: bool = typer.Option(False, "--no-verify"),
        tenant: str = typer.Option(None, help="Security plugin tenant (e.g. global)"),
        index_prefix: str = typer.Option(None, help="The sink's index prefix (default memtrail-alerts)"),
    ) -> None:
        """Import the index pattern, visualizations and dashboard (overwriting older copies)."""
        from sinks.opensearch.dashboards import ImportFailed, import_saved_objects

        cfg = _opensearch_settings(
            no_verify,
            user=user,
            password=password,
            api_key=api_key,
            ca_certs=ca_certs,
            index_prefix=index_prefix,
        )
        try:
            result = import_saved_objects(
                url,
                user=cfg.user,
                password=cfg.password.get_secret_value() if cfg.password else None,
                api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
                ca_certs=cfg.ca_certs,
                verify_certs=cfg.verify_certs,
                tenant=tenant,
                index_prefix=cfg.index_prefix,
            )
        except ImportFailed as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"imported {result.get('successCount', 0)} saved objects into {url}")

    @wazuh_app.command("install")
    def wazuh_install(
        url: str = typer.Option(None, help="Manager API, e.g. https://wazuh:55000"),
        user: str = typer.Option(None),
        password: str = typer.Option(None),
        ca_certs: Path = typer.Option(None, exists=True, dir_okay=False),
        no_verify: bool = typer.Option(False, "--no-verify"),
        restart: bool = typer.Option(True, "--restart/--no-restart", help="Restart the manager after"),
    ) -> None:
        """Upload memtrail_rules.xml and memtrail_decoders.xml through the Wazuh API, validate, restart."""
        from sinks.wazuh.config import WazuhSettings
        from sinks.wazuh.install import InstallFailed, install

        cfg = WazuhSettings(
            **_overrides(
                url=url,
                user=user,
                password=password,
                ca_certs=ca_certs,
                verify_certs=False if no_verify else None,
            )
        )
        try:
            for step in install(cfg, restart=restart):
                typer.echo(step)
        except InstallFailed as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(1) from exc

    @wazuh_app.command("rules")
    def wazuh_rules(
        out: Path = typer.Option(None, "--out", help="Directory (default: the shipped sinks/wazuh/data)"),
        patterns_dir: list[Path] = typer.Option(None, "--patterns", help="Pattern dirs (default: settings)"),
        ids: Path = typer.Option(None, "--ids", help="Rule-id map (default sinks/wazuh/data/rule_ids.json)"),
    ) -> None:
        """Regenerate memtrail_rules.xml and memtrail_decoders.xml from the pattern library."""
        from patterns.engine.api import list_patterns
        from sinks.wazuh.content import DATA_DIR, IDS_FILE, generate, write

        dirs = patterns_dir or load_settings().patterns_dirs
        infos, errors = list_patterns(dirs)
        for err in errors:
            typer.secho(f"skipped: {err}", fg="yellow", err=True)
        ids_path = ids or DATA_DIR / IDS_FILE
        written = write(generate(infos, ids_path), out or DATA_DIR, ids_path)
        typer.echo(f"{len(infos)} pattern rules; wrote " + ", ".join(str(p) for p in written))


def make_wazuh_sink(cfg: Any) -> Any:
    if cfg.mode == "api":
        from sinks.wazuh.api import WazuhApiSink

        return WazuhApiSink(cfg)
    if cfg.mode == "socket":
        from sinks.wazuh.socket_sink import WazuhSocketSink

        return WazuhSocketSink(cfg)
    from sinks.wazuh.file_sink import WazuhFileSink

    return WazuhFileSink(cfg)
