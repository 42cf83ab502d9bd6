"""Audit webhook settings (environment prefix ``MEMTRAIL_AUDIT_``)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 9443


class AuditWebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMTRAIL_AUDIT_", extra="ignore")

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    #: URL path the API server posts to (the ``server`` URL in the webhook kubeconfig).
    path: str = "/k8s-audit"
    #: PEM server certificate and key; required unless ``--self-signed``.
    cert_file: Path | None = None
    key_file: Path | None = None
    #: PEM CA bundle: when set, clients (the API server) must present a certificate it signed.
    client_ca_file: Path | None = None
    #: Written as ``host`` on every event: which cluster the audit log came from.
    cluster_name: str = Field(default_factory=socket.gethostname)
    #: Larger bodies are refused with 413 (the API server's default batch is ≤ 400 events).
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    #: How long a request waits for Kafka to acknowledge its events before answering 503.
    publish_timeout_s: float = Field(default=10.0, gt=0)
