"""Prometheus metrics of the stream tier (bounded labels: agent, direction, stage, severity, rule, reason)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("memtrail_stream_events_total", "Events through an agent", ["agent", "direction"])
BATCH_SIZE = Histogram(
    "memtrail_stream_batch_size",
    "Events per processed batch",
    ["agent"],
    buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000, 50000),
)
LATENCY = Histogram(
    "memtrail_stream_latency_seconds",
    "Event wall time to output publish (enriched: enrichment agent; alert: alert publish)",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30),
)
LAG = Gauge("memtrail_stream_consumer_lag", "High watermark minus next offset", ["topic", "partition"])
ALERTS = Counter("memtrail_alerts_total", "Alerts published (grouped updates included)", ["severity", "rule"])
DEADLETTER = Counter("memtrail_stream_deadletter_total", "Records sent to the dead-letter topic", ["reason"])
REPLAYED = Counter("memtrail_stream_replayed_events_total", "Events replayed to rebuild state on takeover")
ASSIGNED = Gauge("memtrail_stream_assigned_partitions", "Partitions of the enriched topic this worker owns")
PROCESSING = Histogram(
    "memtrail_stream_processing_seconds",
    "Time an agent spends on one batch (engine, expiry and publishing included)",
    ["agent", "step"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
ANNOTATED = Counter(
    "memtrail_stream_annotated_events_total",
    "Events annotated by the enrichment from other sources (trail: args.trail; k8s_session: stamped)",
    ["kind"],
)
FORWARDED = Counter(
    "memtrail_stream_forwarded_batches_total",
    "Raw messages forwarded to the enriched topic as they were (nothing to join or annotate)",
)
SPLICED = Counter(
    "memtrail_stream_spliced_batches_total",
    "Raw messages forwarded as they were with the container table put in front (nothing else changed)",
)
UNREAD = Counter(
    "memtrail_stream_unread_batches_total",
    "v2 raw messages forwarded without being decoded by the enrichment (streams.fastpath)",
)
SPLIT = Counter(
    "memtrail_stream_split_batches_total",
    "Enriched batches split in several messages to stay under the message size limit",
)
SUPPRESSED = Counter(
    "memtrail_stream_alerts_suppressed_total",
    "Alert publications skipped because that id and version were already published (re-processing)",
)
PUBLISH_FAILED = Counter(
    "memtrail_stream_publish_failed_total",
    "Produced messages the broker did not confirm (after the producer's own retries)",
    ["error"],
)
TIMER_ERRORS = Counter(
    "memtrail_stream_timer_errors_total", "Timer runs that failed (logged, worker kept)", ["timer"]
)
