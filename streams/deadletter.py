"""Dead-letter records (pure): ``{"reason","source_topic","partition","offset","key","value","time"}``.

``value`` is the original as text when it is UTF-8, else base64 (``value_encoding`` says
which); a rejected single event inside a good batch is kept as its JSON text.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson


def dead_letter(
    reason: str,
    source_topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | str | None,
    value: bytes | Any,
    now: float | None = None,
) -> bytes:
    if isinstance(value, bytes | bytearray):
        try:
            text, encoding = bytes(value).decode("utf-8"), "text"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(value).decode(), "base64"
    else:
        text, encoding = orjson.dumps(value, default=str).decode(), "text"
    skey = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    return orjson.dumps(
        {
            "reason": reason,
            "source_topic": source_topic,
            "partition": partition,
            "offset": offset,
            "key": skey,
            "value": text,
            "value_encoding": encoding,
            "time": time.time() if now is None else now,
        }
    )


def reason_label(reason: str) -> str:
    """A bounded Prometheus label for a free-text reason (the text before any detail)."""
    head = reason.split(":", 1)[0]
    if head.startswith("event field"):
        return "bad_event"
    if head.startswith("not JSON"):
        return "not_json"
    if head.startswith("empty"):
        return "empty"
    if head.startswith("unsupported"):
        return "bad_version"
    return "bad_batch"
