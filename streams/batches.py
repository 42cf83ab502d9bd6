"""Decode and structurally check EventBatch messages (pure: no Kafka, no Faust).

Both wire versions are read: v1 (self-contained events) and v2 (a process table per
batch, ``schemas.wire``), which is expanded into v1 events before the check. An
unchanged v2 message is forwarded to the enriched topic as it came (``pristine``).

The check is deliberately cheap (type tests on the fields the engine reads), not a
pydantic validation per event: the stream tier handles events as plain dicts for
speed. What fails goes to the dead-letter topic with the reason; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import wire
from schemas.wire import WIRE_VERSION, WireError

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
_NUMBER = (int, float)  # exact types for the fast path (a tuple: `in` compares identity first)


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
    #: True when ``events`` re-encoded would say what the message said (every event was
    #: accepted as it was): the enrichment may then forward the original bytes.
    pristine: bool = False
    #: The message has a ``containers`` table of its own (an enriched message fed back in):
    #: ``splice_containers`` must not add a second one.
    has_containers: bool = False


def check_event(ev: Any) -> str | None:
    """Return why ``ev`` cannot be processed, or None when it fits the Event shape.

    Fast path: one expression of exact type tests (what orjson produces) accepts a good
    event in ~0.5 µs instead of ~0.9 µs; anything it does not accept (a subclass, a bad or
    missing field) takes the full check below, which gives the reason. It accepts nothing
    the full check refuses (exact ``int`` is never ``bool``).
    """
    if type(ev) is dict:
        proc = ev.get("process")
        args = ev.get("args")
        cid = ev.get("container_id")
        if (
            type(proc) is dict
            and type(ev.get("id")) is str
            and type(ev.get("ts_ns")) is int
            and type(ev.get("time")) in _NUMBER
            and type(ev.get("host")) is str
            and type(ev.get("syscall")) is str
            and type(proc.get("pid")) is int
            and type(proc.get("tid")) is int
            and type(proc.get("ppid")) is int
            and (args is None or type(args) is dict)
            and (cid is None or type(cid) is str)
        ):
            return None
    return _why_not_event(ev)


def _why_not_event(ev: Any) -> str | None:
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
    version = doc.get("v", 1)
    if version == WIRE_VERSION:
        try:
            events = wire.expand(doc)
        except WireError as exc:
            out.rejected.append(Rejected(f"bad v2 batch: {exc}", value))
            return out
    elif version != 1:
        out.rejected.append(Rejected(f"unsupported batch schema version {version!r}", value))
        return out
    host = doc.get("host")
    out.host = host if isinstance(host, str) else None
    out.has_containers = "containers" in doc
    if out.key is None and isinstance(doc.get("key"), str):
        out.key = doc["key"]
    good = out.events
    added_args = False
    for ev in events:
        why = check_event(ev)
        if why is None:
            if "args" not in ev:
                ev["args"] = {}
                added_args = True
            good.append(ev)
        else:
            out.rejected.append(Rejected(why, ev))
    out.pristine = not added_args and not out.rejected
    return out


def encode_batch(
    key: str, host: str | None, events: list[dict[str, Any]], containers: Mapping[str, Any] | None = None
) -> bytes:
    """EventBatch JSON (the same shape on the raw and enriched topics).

    ``containers`` (enriched topic): the ContainerMeta of the message's events by container
    id, written once per message instead of once per event (see ``attach_containers``).
    """
    doc: dict[str, Any] = {"v": 1, "host": host or "", "key": key, "events": events}
    if containers:
        doc["containers"] = containers
    return orjson.dumps(doc)


def splice_containers(value: bytes, containers: Mapping[str, Any]) -> bytes:
    """``value`` (one EventBatch JSON object, as it came) with a ``containers`` table put in
    front of its members: the enriched message without decoding and re-encoding its events
    (~1 µs/event). Only for a message without a table of its own (``Decoded.has_containers``)."""
    start = value.find(b"{")
    if start < 0 or not containers:
        raise ValueError("not a JSON object, or nothing to splice")
    return b'{"containers":' + orjson.dumps(containers) + b"," + value[start + 1 :]


def attach_containers(doc: Mapping[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give the events of an enriched message their ``container`` back from its ``containers``
    table (one shared dict per container); events that carry their own are left alone.

    A v2 message (``schemas.wire``) is expanded first: ``events`` must be ``doc["events"]``,
    and the self-contained events are returned (``WireError`` when its tables do not resolve)."""
    if doc.get("v") == WIRE_VERSION:
        events = wire.expand(doc)  # the enrichment forwarded a v2 raw batch as it came
    table = doc.get("containers")
    if isinstance(table, dict) and table:
        for ev in events:
            if isinstance(ev, dict) and ev.get("container") is None:
                meta = table.get(ev.get("container_id"))
                if meta is not None:
                    ev["container"] = meta
    return events
