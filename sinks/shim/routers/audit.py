"""``/api/v1/audit``: the audit trail of changes made through the API (admin only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from sinks.shim.auth import Admin
from sinks.shim.context import Ctx
from sinks.shim.models import AuditPage

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", summary="Changes made through the API, newest first (admin)", response_model=AuditPage)
def audit_log(
    ctx: Ctx,
    _who: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    since: Annotated[datetime | None, Query(description="ISO 8601 or epoch seconds")] = None,
    action: Annotated[
        str | None, Query(max_length=40, pattern=r"^[a-z.]+$", description="e.g. pattern.disable")
    ] = None,
) -> dict[str, Any]:
    items = ctx.store.audit_records(limit, since.timestamp() if since else None, action)
    return {"total": len(items), "items": items}
