"""Dead letters of the stream worker: :func:`schemas.deadletter.build_dead_letter` encoded, and a
bounded metric label for a reason.

A value that cannot be encoded as it is (nesting beyond orjson's limit) is kept shrunk
(``streams.guard.shrink``); one longer than ``VALUE_MAX`` characters keeps its head, with
``value_truncated``, ``value_bytes`` (the original length) and ``value_sha256``, so the record
always fits in one Kafka message.
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.deadletter import build_dead_letter

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
    if not isinstance(value, bytes | bytearray):
        try:
            value = orjson.dumps(value, default=str)
        except (TypeError, orjson.JSONEncodeError):
            from streams.guard import shrink

            value = orjson.dumps(shrink(value))
    if isinstance(key, bytes | bytearray):
        key = bytes(key).decode("utf-8", "replace")
    if isinstance(key, str) and len(key) > 1024:
        key = key[:1024]
    return orjson.dumps(
        build_dead_letter(
            reason, "worker", source_topic, partition, offset, key, value, now=now, max_value_chars=VALUE_MAX
        )
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
