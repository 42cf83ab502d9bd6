"""The API's audit trail: every change (event delete, pattern add/delete/disable/enable).

Each change is written twice: one JSON line on the ``memtrail.shim.audit`` logger (to the
shim's log, for a SIEM) and one row in the store's ``shim_audit`` table, which admins read
with ``GET /api/v1/audit``. Refused attempts on built-in patterns are recorded too
(``outcome: "denied"``): someone trying to switch detection off is itself worth an alert.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Literal

import orjson
from fastapi import Request

from sinks.shim.auth import Principal
from sinks.shim.store import Store

log = logging.getLogger("memtrail.shim.audit")

Outcome = Literal["ok", "denied", "failed"]


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def record(
    store: Store,
    request: Request,
    principal: Principal,
    action: str,
    target: str,
    outcome: Outcome = "ok",
    **detail: Any,
) -> dict[str, Any]:
    """Log and store one audit record; a store failure is logged, never hides the log line."""
    rec: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "time": time.time(),
        "actor": principal.credential,
        "role": principal.role,
        "action": action,
        "target": target,
        "outcome": outcome,
        "client": client_of(request),
        "detail": detail,
    }
    log.warning("audit %s", orjson.dumps(rec, default=str).decode())
    try:
        store.add_audit(rec)
    except Exception as exc:  # the log line above is the record of last resort
        log.error("audit record %s not stored: %s", rec["id"], exc)
    return rec
