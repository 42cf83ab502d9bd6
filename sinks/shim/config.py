"""Shim settings (environment prefix ``MEMTRAIL_SHIM_``), refusing to run without a real secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Secrets that are as good as none: refused unless auth is explicitly switched off.
WEAK_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "admin", "password", "secret", "token", "memtrail", "test"}
)
MIN_SECRET_LEN = 12
#: Placeholders copied from examples (".env.example": change-me-to-a-long-random-token).
PLACEHOLDER_MARKERS = (
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "replace-me",
    "replaceme",
    "example",
)


def default_db() -> str:
    """``$XDG_STATE_HOME/memtrail/shim.sqlite3`` (``~/.local/state/...``): not the working directory."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "memtrail" / "shim.sqlite3")


class ShimSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMTRAIL_SHIM_", extra="ignore")

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    #: SQLite file path or ``sqlite:///path``; ``postgresql://...`` for PostgreSQL.
    db: str = Field(default_factory=default_db)
    #: Read credential: lists events, stats, status and patterns (``Authorization: Bearer`` or ``X-API-Key``).
    token: str | None = None
    #: Admin credential: also deletes events, changes patterns and sends the self-test event.
    #: Must differ from ``token``; without it no change is possible through the API.
    admin_token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None
    insecure_no_auth: bool = False
    #: With no credential configured, make strong one-time read and admin tokens (what
    #: ``memtrail shim`` does, like Jupyter) instead of refusing to start.
    generate_tokens: bool = False
    cors_origins: list[str] = Field(default_factory=list)
    #: Kafka consumer group for alerts and heartbeats.
    group_id: str = "memtrail-shim"
    consume: bool = True
    #: Sensor counts as up while its last heartbeat is younger than this × its interval.
    heartbeat_factor: float = Field(default=3.0, gt=0)
    portainer_url: str | None = None
    portainer_token: str | None = None
    portainer_cache_s: float = Field(default=60.0, ge=0)
    portainer_verify_tls: bool = True
    #: When set, alerts indexed by the OpenSearch sink are also pulled into the store (history).
    opensearch_url: str | None = None
    opensearch_index: str = "memtrail-alerts*"
    opensearch_verify_tls: bool = True
    opensearch_poll_s: float = Field(default=5.0, gt=0)
    static_dir: Path = Path(__file__).resolve().parent / "static"
    #: ``POST /api/v1/security-events/test`` per credential per minute (429 with Retry-After beyond).
    selftest_per_min: int = Field(default=6, ge=1)
    #: Pattern changes (add, delete, disable, enable) per credential per minute.
    changes_per_min: int = Field(default=30, ge=1)

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_admin_is_unset(cls, v: object) -> object:
        """An empty admin token (compose's ``${VAR:-}``) means a read-only API, not a weak secret."""
        return None if v == "" else v

    _tokens_generated: bool = PrivateAttr(default=False)

    @property
    def tokens_generated(self) -> bool:
        return self._tokens_generated

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> ShimSettings:
        if self.insecure_no_auth:
            return self
        if (
            self.generate_tokens
            and self.token is None
            and self.basic_password is None
            and self.admin_token is None
        ):
            self.token, self.admin_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            self._tokens_generated = True
        problems = []
        if self.token is not None and not _strong(self.token):
            problems.append(f"token is a default or shorter than {MIN_SECRET_LEN} characters")
        if (self.basic_user is None) != (self.basic_password is None):
            problems.append("basic auth needs both basic_user and basic_password")
        elif self.basic_password is not None and not _strong(self.basic_password):
            problems.append(f"basic_password is a default or shorter than {MIN_SECRET_LEN} characters")
        if self.admin_token is not None and not _strong(self.admin_token):
            problems.append(f"admin_token is a default or shorter than {MIN_SECRET_LEN} characters")
        if self.admin_token is not None and self.admin_token in (self.token, self.basic_password):
            problems.append("admin_token must differ from the read token and the basic auth password")
        if self.token is None and self.basic_password is None and self.admin_token is None:
            problems.append("no API token or basic auth password configured")
        if problems:
            raise ValueError(
                "refusing to start the shim: "
                + "; ".join(problems)
                + " (set MEMTRAIL_SHIM_TOKEN / --token and MEMTRAIL_SHIM_ADMIN_TOKEN, or pass --insecure-no-auth explicitly)"
            )
        return self

    @property
    def portainer_enabled(self) -> bool:
        return bool(self.portainer_url and self.portainer_token)

    @property
    def auth_enabled(self) -> bool:
        return not self.insecure_no_auth


def _strong(secret: str) -> bool:
    low = secret.strip().lower()
    return (
        low not in WEAK_SECRETS
        and len(secret) >= MIN_SECRET_LEN
        and not any(m in low for m in PLACEHOLDER_MARKERS)
    )
