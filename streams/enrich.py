"""Join events with container metadata and annotate them from the other sources (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.trails.matcher import CONNECT_SYSCALLS, TrailMatcher, annotate


def enrich_events(events: list[dict[str, Any]], containers: Mapping[str, Mapping[str, Any]]) -> int:
    """Fill ``event["container"]`` in place from ``containers`` (id → ContainerMeta dict).

    Returns how many events were filled. Events already carrying a container (e.g. a
    replay of the enriched topic) and host events (``container_id`` null) are left alone.
    """
    filled = 0
    for ev in events:
        cid = ev.get("container_id")
        if not cid or ev.get("container"):
            continue
        meta = containers.get(cid)
        if meta is not None:
            ev["container"] = meta
            filled += 1
    return filled


def join_containers(
    events: list[dict[str, Any]], containers: Mapping[str, Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """``enrich_events`` that returns what it filled as a table by container id (empty: nothing).

    With an unchanged raw message that table is all the enriched message needs besides the
    original bytes (``batches.splice_containers``); ``attach_containers`` gives every event
    without a container of its own the same entry again. One lookup per container, not per event.
    """
    table: dict[str, Mapping[str, Any]] = {}
    for ev in events:
        cid = ev.get("container_id")
        if not cid or ev.get("container"):
            continue
        meta = table.get(cid)
        if meta is None:
            meta = containers.get(cid)
            if meta is None:
                continue
            table[cid] = meta
        ev["container"] = meta
    return table


def detach_containers(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Move the joined ContainerMeta out of the events into one table per message (in place).

    The enriched topic then carries each container once per message, not a ~600-byte copy
    per event that the correlation agent would decode 500 times (``batches.attach_containers``
    puts it back). An event whose container differs from the table's entry keeps its own.
    """
    table: dict[str, Any] = {}
    for ev in events:
        meta = ev.get("container")
        cid = ev.get("container_id")
        if meta is not None and cid and table.setdefault(cid, meta) is meta:
            ev["container"] = None
    return table


def annotate_trails(events: list[dict[str, Any]], matcher: TrailMatcher) -> int:
    """Replace connect events whose destination is on a trail list by their annotated copy
    (``args.trail``); returns how many matched. Other events are untouched."""
    hits = 0
    for i, ev in enumerate(events):
        if ev.get("syscall") in CONNECT_SYSCALLS:
            out = annotate(ev, matcher)
            if out is not ev:
                events[i] = dict(out)
                hits += 1
    return hits
