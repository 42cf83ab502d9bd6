"""Run the audit webhook: Kafka publisher + FastAPI app under uvicorn with TLS."""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
from pathlib import Path

import uvicorn

from memtrail.core.kafka import ensure_topics
from memtrail.core.settings import Settings
from sensors.k8s_audit.app import create_app
from sensors.k8s_audit.publisher import AuditPublisher
from sensors.k8s_audit.settings import AuditWebhookSettings
from sensors.k8s_audit.tls import self_signed

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The webhook cannot start as configured (message says what to change)."""


def tls_files(
    cfg: AuditWebhookSettings, make_self_signed: bool, workdir: Path | None = None
) -> tuple[Path, Path]:
    if make_self_signed:
        d = workdir or Path(tempfile.mkdtemp(prefix="memtrail-audit-tls-"))
        names = sorted(
            {"localhost", "127.0.0.1", cfg.cluster_name} | ({cfg.host} if cfg.host != "0.0.0.0" else set())
        )
        cert, key = self_signed(d, names)
        log.warning("serving a throwaway self-signed certificate (local use only)")
        return cert, key
    if not cfg.cert_file or not cfg.key_file:
        raise ConfigError(
            "HTTPS needs a certificate: set --cert/--key (MEMTRAIL_AUDIT_CERT_FILE/KEY_FILE) "
            "or pass --self-signed for a throwaway one"
        )
    for p in (cfg.cert_file, cfg.key_file, cfg.client_ca_file):
        if p is not None and not Path(p).is_file():
            raise ConfigError(f"{p}: no such file")
    return cfg.cert_file, cfg.key_file


def build_server(
    settings: Settings, cfg: AuditWebhookSettings, make_self_signed: bool = False
) -> uvicorn.Server:
    if not (cfg.client_ca_file or cfg.token or cfg.insecure_no_auth):
        raise ConfigError(
            "authentication required: set a client CA for mutual TLS (--client-ca, "
            "MEMTRAIL_AUDIT_CLIENT_CA_FILE) or a bearer token (MEMTRAIL_AUDIT_TOKEN), or pass "
            "--insecure-no-auth for local use"
        )
    if cfg.insecure_no_auth and not (cfg.client_ca_file or cfg.token):
        log.warning("accepting unauthenticated audit events (--insecure-no-auth): local use only")
    ensure_topics(settings)  # also the reachability check: raises BrokerUnreachable
    cert, key = tls_files(cfg, make_self_signed)
    publisher = AuditPublisher(settings, timeout_s=cfg.publish_timeout_s)
    app = create_app(
        publisher,
        cfg.cluster_name,
        path=cfg.path,
        max_body_bytes=cfg.max_body_bytes,
        ready=publisher.ready,
        token=cfg.token.get_secret_value() if cfg.token else None,
        max_item_bytes=cfg.max_item_bytes,
        max_depth=cfg.max_depth,
    )
    config = uvicorn.Config(
        app,
        host=cfg.host,
        port=cfg.port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        ssl_ca_certs=str(cfg.client_ca_file) if cfg.client_ca_file else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if cfg.client_ca_file else ssl.CERT_NONE,
        log_level="warning",
        access_log=False,
    )
    if make_self_signed:
        # Build the TLS context now, then delete the throwaway key: nothing outlives the process
        # (uvicorn re-raises SIGTERM after shutdown, so atexit handlers would not run).
        config.load()
        shutil.rmtree(cert.parent, ignore_errors=True)
    return uvicorn.Server(config)
