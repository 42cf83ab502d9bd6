"""OpenSearch sink settings (environment prefix ``MEMTRAIL_OPENSEARCH_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OpenSearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMTRAIL_OPENSEARCH_", extra="ignore")

    url: str = "http://localhost:9200"
    user: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = Field(default=None, description="Sent as 'Authorization: ApiKey <key>'")
    ca_certs: Path | None = None
    verify_certs: bool = True
    index_prefix: str = "memtrail-alerts"
    retention_days: int = Field(default=30, ge=1, description="ISM deletes daily indices older than this")
    #: Install the index template and ISM policy at start (needs cluster privileges).
    setup: bool = True
    request_timeout: float = Field(default=30.0, gt=0)
    #: Attempts per batch before backing off as a whole (the loop then pauses and tries again).
    max_retries: int = Field(default=5, ge=0)
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _one_auth(self) -> OpenSearchSettings:
        if self.api_key and (self.user or self.password):
            raise ValueError("give either user/password or an API key, not both")
        if bool(self.user) != bool(self.password):
            raise ValueError("user and password go together")
        return self
