"""What Memtrail sends to Wazuh: the alert wrapped like Wazuh's own integrations.

``{"integration": "memtrail", "memtrail": <alert JSON>}``: the ``integration`` field is
the marker the base rule matches, and nesting under ``memtrail`` keeps alert fields such
as ``id`` and ``rule`` clear of Wazuh's static fields (decoded as ``memtrail.rule.id``).
"""

from __future__ import annotations

from typing import Any

import orjson

#: analysisd drops longer messages (OS_MAXSTR is 65536 bytes including the header).
MAX_MESSAGE_BYTES = 65536 - 256


def event_json(alert: dict[str, Any]) -> bytes:
    return orjson.dumps({"integration": "memtrail", "memtrail": alert})


def socket_message(alert: dict[str, Any], location: str = "memtrail") -> bytes:
    """analysisd queue format ``<queue>:<location>:<message>``; queue 1 is a local log message."""
    return b"1:" + location.encode() + b":" + event_json(alert)
