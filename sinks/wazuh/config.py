"""Wazuh sink settings (environment prefix ``MEMTRAIL_WAZUH_``); ``mode`` picks the delivery route."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class WazuhSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMTRAIL_WAZUH_", extra="ignore")

    #: api: manager API POST /events; socket: analysisd queue socket (same host);
    #: file: JSON lines read by a Wazuh agent (<localfile> with log_format json).
    mode: Literal["api", "socket", "file"] = "api"

    url: str = "https://localhost:55000"
    user: str = "wazuh-wui"
    password: SecretStr | None = None
    verify_certs: bool = True
    ca_certs: Path | None = None
    request_timeout: float = Field(default=30.0, gt=0)
    #: The manager refuses more than 100 events per request.
    max_events_per_request: int = Field(default=100, ge=1, le=100)
    #: Wazuh's default API limit is 30 requests per minute (max_request_per_minute).
    requests_per_minute: int = Field(default=30, ge=1)
    max_retries: int = Field(default=5, ge=0)
    backoff_initial: float = Field(default=1.0, ge=0)
    backoff_max: float = Field(default=60.0, ge=0)

    socket_path: Path = Path("/var/ossec/queue/sockets/queue")
    location: str = "memtrail"

    file_path: Path = Path("/var/log/memtrail/alerts.json")
