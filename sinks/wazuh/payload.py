"""What Memtrail sends to Wazuh: the alert wrapped like Wazuh's own integrations.

``{"integration": "memtrail", "memtrail": <alert JSON>}``: the ``integration`` field is
the marker the base rule matches, and nesting under ``memtrail`` keeps alert fields such
as ``id`` and ``rule`` clear of Wazuh's static fields (decoded as ``memtrail.rule.id``).
An incident (several patterns on one attack) also carries ``incident.patterns`` (every
pattern id, the primary = ``memtrail.rule.id`` first) and ``incident.techniques`` (their
union), flat string lists that Wazuh's JSON decoder indexes as they are; the child rule
that matches is the primary's, i.e. the one of highest severity, so the level is right.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.alerts import pattern_ids

#: analysisd drops longer messages (OS_MAXSTR is 65536 bytes including the header).
MAX_MESSAGE_BYTES = 65536 - 256


def incident_fields(alert: dict[str, Any]) -> dict[str, list[str]]:
    techniques = ((alert.get("threat") or {}).get("technique") or {}).get("id") or []
    return {"patterns": pattern_ids(alert), "techniques": [str(t) for t in techniques]}


def event_json(alert: dict[str, Any]) -> bytes:
    return orjson.dumps({"integration": "memtrail", "incident": incident_fields(alert), "memtrail": alert})


def socket_message(alert: dict[str, Any], location: str = "memtrail") -> bytes:
    """analysisd queue format ``<queue>:<location>:<message>``; queue 1 is a local log message."""
    return b"1:" + location.encode() + b":" + event_json(alert)
