"""Audit webhook settings (environment prefix ``MEMTRAIL_AUDIT_``)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, SecretStr
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
    #: Bearer token the API server sends (``user.token`` of its webhook kubeconfig).
    token: SecretStr | None = None
    #: Accept unauthenticated posts: local experiments only. One of client_ca_file, token or
    #: this is required, so a forged audit event cannot be posted by anyone who reaches the port.
    insecure_no_auth: bool = False
    #: Written as ``host`` on every event: which cluster the audit log came from.
    cluster_name: str = Field(default_factory=socket.gethostname)
    #: Larger bodies are refused with 413 (the API server's default batch is ≤ 400 events).
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    #: One audit event larger than this (JSON bytes) is dead-lettered, the rest of the batch is
    #: accepted: a Kafka message has a size limit, and a batch that can never succeed must not
    #: be retried by the API server forever.
    max_item_bytes: int = Field(default=900 * 1024, gt=0)
    #: Objects nested deeper than this are dead-lettered before they reach the normaliser/engine.
    max_depth: int = Field(default=64, gt=0)
    #: How long a request waits for Kafka to acknowledge its events before answering 503.
    publish_timeout_s: float = Field(default=10.0, gt=0)
