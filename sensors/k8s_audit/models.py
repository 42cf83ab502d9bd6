"""The audit.k8s.io/v1 EventList as the API server's webhook backend posts it.

Only the fields Memtrail relies on are typed; everything else is kept (``extra="allow"``)
so the raw event survives intact. Reference: k8s.io/apiserver/pkg/apis/audit/v1/types.go.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AUDIT_API_VERSION = "audit.k8s.io/v1"
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
LEVELS = ("None", "Metadata", "Request", "RequestResponse")


class UserInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    username: str = ""
    uid: str | None = None
    groups: list[str] = Field(default_factory=list)
    extra: dict[str, list[str]] = Field(default_factory=dict)


class ObjectReference(BaseModel):
    model_config = ConfigDict(extra="allow")

    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    apiGroup: str | None = None
    apiVersion: str | None = None
    resourceVersion: str | None = None
    subresource: str | None = None


class ResponseStatus(BaseModel):
    """metav1.Status as the audit event carries it (often only ``code``)."""

    model_config = ConfigDict(extra="allow")

    code: int | None = None
    status: str | None = None
    reason: str | None = None
    message: str | None = None


class AuditEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: Literal["Event"] | None = None
    apiVersion: str | None = None
    level: Literal["None", "Metadata", "Request", "RequestResponse"]
    auditID: str = Field(min_length=1)
    stage: Literal["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]
    requestURI: str
    verb: str = Field(min_length=1)
    user: UserInfo
    impersonatedUser: UserInfo | None = None
    sourceIPs: list[str] = Field(default_factory=list)
    userAgent: str | None = None
    objectRef: ObjectReference | None = None
    responseStatus: ResponseStatus | None = None
    requestObject: dict[str, Any] | None = None
    responseObject: dict[str, Any] | None = None
    requestReceivedTimestamp: datetime | None = None
    stageTimestamp: datetime | None = None
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_time(self) -> AuditEvent:
        if self.stageTimestamp is None and self.requestReceivedTimestamp is None:
            raise ValueError("neither stageTimestamp nor requestReceivedTimestamp is set")
        if self.apiVersion is not None and self.apiVersion != AUDIT_API_VERSION:
            raise ValueError(f"apiVersion {self.apiVersion!r} is not {AUDIT_API_VERSION}")
        return self


class EventList(BaseModel):
    """The envelope. Items are validated one by one (``AuditEvent``) so one bad item is
    dead-lettered with its reason instead of failing the whole batch."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["EventList"]
    apiVersion: Literal["audit.k8s.io/v1"]
    metadata: dict[str, Any] = Field(default_factory=dict)
    items: list[Any]
