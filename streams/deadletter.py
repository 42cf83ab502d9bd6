"""Dead-letter records (pure): ``{"reason","source_topic","partition","offset","key","value","time"}``.

``value`` is the original as text when it is UTF-8, else base64 (``value_encoding`` says
which); a rejected single event inside a good batch is kept as its JSON text. A value
that cannot be encoded as it is (nesting beyond orjson's limit) is kept shrunk
(``streams.guard.shrink``); one longer than ``VALUE_MAX`` characters keeps its head, with
``value_truncated``, ``value_bytes`` (the original length) and ``value_sha256`` so that
the record always fits in one Kafka message.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import orjson

#: Characters of the original value a record keeps (the record must fit one Kafka message).
VALUE_MAX = 256 * 1024


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
        try:
            text = orjson.dumps(value, default=str).decode()
        except (TypeError, orjson.JSONEncodeError):
            from streams.guard import shrink

            text = orjson.dumps(shrink(value)).decode()
        encoding = "text"
    skey = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    extra: dict[str, object] = {}
    if len(text) > VALUE_MAX:
        raw = text.encode("utf-8", "replace")
        extra = {
            "value_truncated": True,
            "value_bytes": len(raw),
            "value_sha256": hashlib.sha256(raw).hexdigest(),
        }
        text = text[:VALUE_MAX]
    if isinstance(skey, str) and len(skey) > 1024:
        skey = skey[:1024]
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
            **extra,
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
    for prefix, label in _GUARD_LABELS:
        if head.startswith(prefix):
            return label
    return "bad_batch"


#: Reasons given by the poison guards (``streams.guard``) -> bounded labels.
_GUARD_LABELS = (
    ("engine failed", "engine_error"),
    ("grouping failed", "engine_error"),
    ("flush failed", "engine_error"),
    ("incident release failed", "engine_error"),
    ("event cannot be encoded", "unencodable"),
    ("event too large", "too_large"),
    ("alert too large", "too_large"),
    ("alert cannot be encoded", "unencodable"),
    ("enrichment failed", "enrich_error"),
    ("annotation failed", "enrich_error"),
    ("audit failed", "audit_error"),
    ("bad enriched batch", "bad_batch"),
)
