"""The correlation and audit agents' steps and the timers' (pure: no Faust, no Kafka).

``correlate_step``: enriched messages -> alerts (the engine per partition, ``Correlator``);
``audit_step``: Kubernetes audit events (one per message) -> alerts, through engines of
their own (partition key ``("k8s_audit", n)``); ``flush_step`` / ``release_step``: what the
timers publish (absences come due, incidents whose hold ran out). Each returns
``(out, dead)`` (``streams.step``): alerts for the alerts topic, inputs for the dead letters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.alerts import Alert
from streams import metrics as m
from streams.batches import check_event
from streams.correlate import Correlator, PartKey
from streams.fastpath import decode_enriched
from streams.guard import Failure, reason_of
from streams.step import Dead, Inbound, Ledger, Outbound, dead_failures, dead_of, publish_alerts

#: The engine-state key of a partition of the audit topic.
AUDIT = "k8s_audit"


class _NoLedger:
    """Publishes every alert (tests, and a worker without takeover de-duplication)."""

    def published(self, alert_id: str, version: int) -> bool:
        return False

    def record(self, alert_id: str, version: int) -> None:
        pass


@dataclass
class CorrelateContext:
    """What the correlation steps read and change besides the batch."""

    correlator: Correlator
    enriched_topic: str
    audit_topic: str
    alerts_topic: str
    ledger: Ledger = field(default_factory=_NoLedger)
    #: Largest alert message, bytes.
    limit: int = 1 << 20


def take_failures(correlator: Correlator) -> list[Failure]:
    """What the correlator could not handle since the last call (``guard.ContainedCorrelator``)."""
    take = getattr(correlator, "take_failures", None)
    return list(take()) if take is not None else []


def _run(
    ctx: CorrelateContext,
    agent: str,
    by_part: dict[PartKey, list[dict[str, Any]]],
    topic: str,
    dead: list[Dead],
) -> tuple[list[Outbound], list[Dead]]:
    """The engine over each partition's events: the alerts to publish, and ``dead`` with what
    the correlator could not handle added."""
    out: list[Outbound] = []
    n = 0
    for part, events in by_part.items():
        n += len(events)
        o, d = publish_alerts(ctx.correlator.process(part, events), ctx.ledger, ctx.limit, ctx.alerts_topic)
        out += o
        dead += d
        number: Any = part[1] if isinstance(part, tuple) else part
        dead += dead_failures(take_failures(ctx.correlator), topic, int(number))
    m.EVENTS.labels(agent, "in").inc(n)
    m.BATCH_SIZE.labels(agent).observe(n)
    return out, dead


def correlate_step(ctx: CorrelateContext, batch: list[Inbound]) -> tuple[list[Outbound], list[Dead]]:
    """Enriched messages -> alerts. A message that cannot be read, and an event that does not
    fit the Event shape or that the engine fails on, is dead-lettered; the rest goes on."""
    by_part: dict[PartKey, list[dict[str, Any]]] = defaultdict(list)
    dead: list[Dead] = []
    for msg in batch:
        try:
            events, rejected = decode_enriched(msg.value or b"")
        except Exception as exc:
            dead.append(dead_of(msg, reason_of("bad enriched batch", exc)))
            continue
        dead += [dead_of(msg, rej.reason, rej.value) for rej in rejected]  # v2 forwarded unread
        by_part[msg.partition].extend(events)
    return _run(ctx, "correlate", by_part, ctx.enriched_topic, dead)


def audit_step(ctx: CorrelateContext, batch: list[Inbound]) -> tuple[list[Outbound], list[Dead]]:
    """Kubernetes audit events (one JSON object per message, validated, no container join) ->
    alerts through the audit engines."""
    by_part: dict[PartKey, list[dict[str, Any]]] = defaultdict(list)
    dead: list[Dead] = []
    for msg in batch:
        try:
            doc = orjson.loads(msg.value) if msg.value else None
        except orjson.JSONDecodeError as exc:
            dead.append(dead_of(msg, f"not JSON: {exc}"))
            continue
        why = "empty message" if doc is None else check_event(doc)
        if why is not None:
            dead.append(dead_of(msg, why, msg.value or b""))
            continue
        assert isinstance(doc, dict)
        doc.setdefault("args", {})
        by_part[(AUDIT, msg.partition)].append(doc)
    return _run(ctx, "audit", by_part, ctx.audit_topic, dead)


def _timer_out(ctx: CorrelateContext, alerts: list[Alert]) -> tuple[list[Outbound], list[Dead]]:
    out, dead = publish_alerts(alerts, ctx.ledger, ctx.limit, ctx.alerts_topic)
    return out, dead + dead_failures(take_failures(ctx.correlator), ctx.enriched_topic, None)


def flush_step(
    ctx: CorrelateContext, now: float, skip: Iterable[PartKey]
) -> tuple[list[Outbound], list[Dead]]:
    """Expire window state; the alerts that came due without a new event (absences)."""
    return _timer_out(ctx, ctx.correlator.flush(now, skip=skip))


def release_step(
    ctx: CorrelateContext, now: float, skip: Iterable[PartKey]
) -> tuple[list[Outbound], list[Dead]]:
    """The incidents whose hold ran out (below critical, no pattern joined)."""
    return _timer_out(ctx, ctx.correlator.release(now, skip=skip))


def assignment(
    owned: set[PartKey], assigned: Iterable[tuple[str, int]], enriched_topic: str, audit_topic: str
) -> tuple[set[PartKey], set[PartKey]]:
    """Engine states to drop and to build for a new assignment of (topic, partition) pairs:
    enriched partitions are keyed by number, audit ones ``("k8s_audit", n)``."""
    mine: set[PartKey] = {p for t, p in assigned if t == enriched_topic}
    mine |= {(AUDIT, p) for t, p in assigned if t == audit_topic}
    return owned - mine, mine - owned
