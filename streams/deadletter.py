"""Dead letters of the stream worker: :func:`schemas.deadletter.build_dead_letter` encoded, and a
bounded metric label for a reason."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.deadletter import build_dead_letter


def dead_letter(
    reason: str,
    source_topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | str | None,
    value: bytes | Any,
    now: float | None = None,
) -> bytes:
    return orjson.dumps(
        build_dead_letter(reason, "worker", source_topic, partition, offset, key, value, now=now)
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
