"""The dead-letter record on ``memtrail.deadletter``: one shape for every component.

Whatever a component cannot process (a worker's bad batch or event, a sink's refused alert,
the shim's invalid message, an audit item too large or too deep) is written here with the
reason and the original bytes, so nothing is lost silently and an operator can replay it.
``build_dead_letter`` is the only builder; it returns a plain dict (no model instance on the
hot path), which :class:`DeadLetter` validates and documents as JSON Schema.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

DEAD_LETTER_VERSION = 1


class DeadLetter(BaseModel):
    v: int = DEAD_LETTER_VERSION
    reason: str = Field(description="Why it could not be processed, e.g. `not JSON: ...`")
    component: str = Field(
        description="Who refused it: `worker`, `sink:<name>`, `shim`, `audit-webhook`",
    )
    source_topic: str = Field(description="Topic the original came from (or the receiving endpoint)")
    partition: int | None = None
    offset: int | None = Field(default=None, description="Offset in source_topic, or the item index")
    key: str | None = Field(default=None, description="The original key, UTF-8 with replacement")
    value: str = Field(description="The original value: UTF-8 text, or base64 (value_encoding)")
    value_encoding: Literal["text", "base64"] = "text"
    value_truncated: bool = Field(default=False, description="value was cut to the component's limit")
    value_bytes: int | None = Field(default=None, description="Length of the whole original (when truncated)")
    value_sha256: str | None = Field(
        default=None, description="SHA-256 of the whole original (when truncated)"
    )
    time: float = Field(description="Epoch seconds when it was dead-lettered")


def build_dead_letter(
    reason: str,
    component: str,
    source_topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | str | None,
    value: bytes | Any,
    *,
    now: float | None = None,
    max_value_chars: int | None = None,
) -> dict[str, Any]:
    """The record for one refused input; ``value`` bytes are kept as text when UTF-8, else base64,
    and anything else (a parsed event) as its JSON text."""
    if isinstance(value, bytes | bytearray):
        try:
            text, encoding = bytes(value).decode("utf-8"), "text"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(value).decode("ascii"), "base64"
    else:
        try:
            text, encoding = orjson.dumps(value, default=str).decode(), "text"
        except (TypeError, orjson.JSONEncodeError):  # e.g. nesting deeper than orjson's limit
            text, encoding = base64.b64encode(repr(value).encode()).decode("ascii"), "base64"
    truncated = max_value_chars is not None and len(text) > max_value_chars
    whole: dict[str, Any] = {}
    if truncated:
        raw = text.encode("utf-8", "replace")
        whole = {"value_bytes": len(raw), "value_sha256": hashlib.sha256(raw).hexdigest()}
        text = text[:max_value_chars]
    return {
        "v": DEAD_LETTER_VERSION,
        "reason": reason,
        "component": component,
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "key": key.decode("utf-8", "replace") if isinstance(key, bytes | bytearray) else key,
        "value": text,
        "value_encoding": encoding,
        "value_truncated": truncated,
        "time": time.time() if now is None else now,
        **whole,
    }
