"""Prometheus metrics shared by the sink workers (label ``sink`` = opensearch | wazuh-api | ...)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter("memtrail_sink_deliveries_total", "Alerts accepted by the destination", ["sink"])
FAILURES = Counter(
    "memtrail_sink_failures_total",
    "Delivery failures by reason (rejected/invalid are dead-lettered; the others are retried)",
    ["sink", "reason"],
)
RETRIES = Counter("memtrail_sink_retries_total", "Requests or items sent again after a failure", ["sink"])
BATCH_SECONDS = Histogram(
    "memtrail_sink_batch_seconds",
    "Time to deliver one consumed batch, retries included",
    ["sink"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BROKER_UP = Gauge(
    "memtrail_sink_broker_up",
    "1 while the sink's last broker probe answered, 0 while the broker is unreachable",
    ["sink"],
)
