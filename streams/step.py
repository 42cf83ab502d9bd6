"""The agent boundary (pure: no Faust, no Kafka): what an agent reads, sends and dead-letters.

Every agent decision is a plain function ``step(context, batch) -> (out, dead)``
(``streams.enrich.enrich_step``, ``streams.correlate_step``): ``batch`` is a list of
``Inbound`` messages, ``out`` the ``Outbound`` messages to send to the agent's output topic,
``dead`` the ``Dead`` inputs for the dead-letter topic. The Faust agents in ``streams.app``
only turn stream events into ``Inbound``, call the step, send what it returns and confirm
the sends before the next batch. Alerts are encoded here once for every agent and timer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from schemas.alerts import Alert
from streams import metrics as m
from streams.deadletter import dead_letter
from streams.guard import Failure, alert_bytes, alert_doc, reason_of


@dataclass(frozen=True, slots=True)
class Inbound:
    """One consumed message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message for the agent's output topic."""

    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Dead:
    """One input (a message, an event, an alert) for the dead-letter topic, and why."""

    reason: str
    topic: str
    partition: int | None
    offset: int | None
    key: Any
    value: Any

    def record(self) -> bytes:
        """The dead-letter record (``schemas.deadletter``, the one model) as sent."""
        return dead_letter(self.reason, self.topic, self.partition, self.offset, self.key, self.value)

    @property
    def record_key(self) -> bytes | None:
        return self.key if isinstance(self.key, bytes) else None


def dead_of(msg: Inbound, reason: str, value: Any = None) -> Dead:
    """``msg`` (or one part of it, ``value``) dead-lettered for ``reason``."""
    return Dead(reason, msg.topic, msg.partition, msg.offset, msg.key, msg.value if value is None else value)


def dead_failures(failures: list[Failure], topic: str, partition: int | None) -> list[Dead]:
    """Failures of the correlator (an event, an alert, a partition's flush) as dead letters."""
    return [Dead(f.reason, topic, partition, None, None, f.value) for f in failures]


class Ledger(Protocol):
    """What ``publish_alerts`` needs of ``streams.pause.AlertLedger``."""

    def published(self, alert_id: str, version: int) -> bool: ...

    def record(self, alert_id: str, version: int) -> None: ...


def publish_alerts(
    alerts: list[Alert], ledger: Ledger, limit: int, alerts_topic: str
) -> tuple[list[Outbound], list[Dead]]:
    """The alerts topic's messages for ``alerts``: each encoded in at most ``limit`` bytes,
    a version already published skipped (the ledger), one that cannot be encoded dead-lettered."""
    out: list[Outbound] = []
    dead: list[Dead] = []
    for alert in alerts:
        version = max(alert.revision, alert.count)
        if ledger.published(alert.id, version):
            m.SUPPRESSED.inc()  # already in the alerts topic (events re-processed after a takeover)
            continue
        try:
            doc = alert_doc(alert)
            value = alert_bytes(doc, limit)
        except Exception as exc:
            dead.append(
                Dead(
                    reason_of("alert cannot be encoded", exc),
                    alerts_topic,
                    None,
                    None,
                    alert.id,
                    {"id": alert.id, "rule": alert.rule.id},
                )
            )
            continue
        if value is None:
            dead.append(Dead("alert too large", alerts_topic, None, None, alert.id, doc))
            continue
        out.append(Outbound(alert.id.encode(), value))
        ledger.record(alert.id, version)
        m.ALERTS.labels(alert.rule.severity, alert.rule.id).inc()
        m.EVENTS.labels("correlate", "out").inc()
        if alert.evidence:
            t = alert.evidence[-1].get("time")
            if isinstance(t, int | float):
                m.LATENCY.labels("alert").observe(max(0.0, time.time() - t))
    return out, dead
