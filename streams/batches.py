"""Decode and structurally check EventBatch messages (pure: no Kafka, no Faust).

The check is deliberately cheap (type tests on the fields the engine reads), not a
pydantic validation per event: the stream tier handles events as plain dicts for
speed. What fails goes to the dead-letter topic with the reason; nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

# field -> accepted types; bool is an int subclass, so it is refused explicitly below.
_REQUIRED: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("id", str),
    ("ts_ns", int),
    ("time", (int, float)),
    ("host", str),
    ("syscall", str),
    ("process", dict),
)
_PROCESS_INTS = ("pid", "tid", "ppid")


@dataclass
class Rejected:
    """One rejected message or event: why, and the original bytes or object."""

    reason: str
    value: bytes | dict[str, Any] | Any


@dataclass
class Decoded:
    key: str | None
    host: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def check_event(ev: Any) -> str | None:
    """Return why ``ev`` cannot be processed, or None when it fits the Event shape."""
    if not isinstance(ev, dict):
        return f"event is {type(ev).__name__}, not an object"
    for name, types in _REQUIRED:
        value = ev.get(name)
        if value is None:
            return f"event field {name!r} missing"
        if not isinstance(value, types) or isinstance(value, bool):
            return f"event field {name!r} has type {type(value).__name__}"
    args = ev.get("args")
    if args is not None and not isinstance(args, dict):
        return "event field 'args' is not an object"
    proc = ev["process"]
    for name in _PROCESS_INTS:
        value = proc.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"event field 'process.{name}' missing or not an integer"
    cid = ev.get("container_id")
    if cid is not None and not isinstance(cid, str):
        return "event field 'container_id' is not a string"
    return None


def decode_batch(value: bytes | None, key: bytes | str | None = None) -> Decoded:
    """Split one raw message into good events and rejected parts (with reasons)."""
    skey = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    out = Decoded(key=skey, host=None)
    if not value:
        out.rejected.append(Rejected("empty message", value or b""))
        return out
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        out.rejected.append(Rejected(f"not JSON: {exc}", value))
        return out
    if not isinstance(doc, dict):
        out.rejected.append(Rejected(f"batch is {type(doc).__name__}, not an object", value))
        return out
    events = doc.get("events")
    if not isinstance(events, list):
        out.rejected.append(Rejected("batch has no 'events' list", value))
        return out
    if doc.get("v", 1) != 1:
        out.rejected.append(Rejected(f"unsupported batch schema version {doc.get('v')!r}", value))
        return out
    host = doc.get("host")
    out.host = host if isinstance(host, str) else None
    if out.key is None and isinstance(doc.get("key"), str):
        out.key = doc["key"]
    good = out.events
    for ev in events:
        why = check_event(ev)
        if why is None:
            ev.setdefault("args", {})
            good.append(ev)
        else:
            out.rejected.append(Rejected(why, ev))
    return out


def encode_batch(key: str, host: str | None, events: list[dict[str, Any]]) -> bytes:
    """EventBatch JSON (the same shape on the raw and enriched topics)."""
    return orjson.dumps({"v": 1, "host": host or "", "key": key, "events": events})
