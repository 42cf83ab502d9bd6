"""The enrichment agent's step (pure: no Faust, no Kafka): raw messages -> enriched messages.

``enrich_step`` joins events with container metadata and annotates them from the other
sources (trail lists, pod sessions); the helpers below are its parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streams import metrics as m
from streams.batches import decode_batch, splice_containers
from streams.fastpath import count_events, forward_unread
from streams.guard import Failure, each_contained, fit_batches, reason_of
from streams.step import Dead, Inbound, Outbound, dead_of
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


@dataclass
class EnrichContext:
    """What the enrichment step reads besides the batch (built per batch by ``streams.app``)."""

    #: Container id -> ContainerMeta (the GlobalTable view, or the reader's dict).
    containers: Mapping[str, Mapping[str, Any]]
    #: Trails and pod sessions (``Pipeline.annotate``): events -> (events, whether any changed).
    annotate: Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], bool]]
    #: Trail lists are loaded (connect events get annotated).
    trails: bool = False
    #: Pod sessions are live (pod events get stamped).
    sessions: bool = False
    #: Largest enriched message, bytes.
    limit: int = 1 << 20


def enrich_step(ctx: EnrichContext, batch: list[Inbound]) -> tuple[list[Outbound], list[Dead]]:
    """Raw messages -> enriched messages and dead letters. One message's failure is that
    message's: it is dead-lettered whole and the others go on."""
    out: list[Outbound] = []
    dead: list[Dead] = []
    n_in = n_out = 0
    for msg in batch:
        try:
            n_in_msg, n_out_msg = _enrich_one(ctx, msg, out, dead)
        except Exception as exc:
            dead.append(dead_of(msg, reason_of("enrichment failed", exc), msg.value or b""))
            n_in_msg, n_out_msg = 1, 0
        n_in += n_in_msg
        n_out += n_out_msg
    m.EVENTS.labels("enrich", "in").inc(n_in)
    m.EVENTS.labels("enrich", "out").inc(n_out)
    m.BATCH_SIZE.labels("enrich").observe(n_in)
    return out, dead


def _enrich_one(ctx: EnrichContext, msg: Inbound, out: list[Outbound], dead: list[Dead]) -> tuple[int, int]:
    """One raw message: its enriched messages appended to ``out``, its rejected parts to
    ``dead``; returns the events in and out. Appends only once nothing can raise any more."""
    raw = msg.value or b""
    limit = ctx.limit
    fast = forward_unread(raw, msg.key, ctx.containers, trails=ctx.trails, sessions=ctx.sessions)
    if fast is not None and len(fast) <= limit:
        # v2 with nothing per event to add: forwarded without being decoded (streams.fastpath)
        n = count_events(raw)  # the same events: the raw batch states their number
        out.append(Outbound(msg.key, fast))
        (m.FORWARDED if fast is raw else m.SPLICED).inc()
        m.UNREAD.inc()
        return n, n
    dec = decode_batch(raw, msg.key)
    n_in = len(dec.events) + len(dec.rejected)
    rejected = [dead_of(msg, rej.reason, rej.value) for rej in dec.rejected]
    if not dec.events:
        dead.extend(rejected)
        return n_in, 0
    key = dec.key or f"host:{dec.host or dec.events[0].get('host', '')}"
    joined = join_containers(dec.events, ctx.containers)
    events, annotated, afail = _annotate_contained(ctx, dec.events)
    values: list[bytes] = []
    efail: list[Failure] = []
    if dec.pristine and not annotated and not joined and not afail and len(raw) <= limit:
        # Nothing to add (host events, containers not yet known): the original
        # bytes say the same; re-encoding would cost ~1 µs/event for nothing.
        values = [raw]
        m.FORWARDED.inc()
    elif joined and dec.pristine and not annotated and not dec.has_containers and not afail:
        # Only the container table is new: put it in front of the original bytes.
        value = splice_containers(raw, joined)
        if len(value) <= limit:
            values = [value]
            m.SPLICED.inc()
    if not values and events:
        # Re-encoded; split when over the limit, an event that cannot go alone dead-lettered.
        values, efail = fit_batches(key, dec.host, events, detach_containers(events), limit)
        if len(values) > 1:
            m.SPLIT.inc()
    dead.extend(rejected)
    dead.extend(dead_of(msg, f.reason, f.value) for f in (*afail, *efail))
    out.extend(Outbound(key.encode(), value) for value in values)
    if events:
        t = events[0].get("time")
        if isinstance(t, int | float):
            m.LATENCY.labels("enriched").observe(max(0.0, time.time() - t))
    return n_in, len(events) - len(efail)


def _annotate_contained(
    ctx: EnrichContext, events: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], bool, list[Failure]]:
    """``ctx.annotate`` with a failing event dead-lettered alone (``guard.each_contained``)."""
    changed = False

    def run(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal changed
        out, ch = ctx.annotate(evs)
        changed = changed or ch
        return out

    out, failures = each_contained(run, events, "annotation failed")
    return out, changed or bool(failures), failures
