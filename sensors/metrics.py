"""Prometheus metrics of the sensor (served by memtrail.core.metrics.serve_metrics, port 9101)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS = Counter("memtrail_sensor_events_total", "Events decoded from the ring buffer", ["syscall"])
LOST = Counter("memtrail_sensor_events_lost_total", "Events lost in the kernel (ring buffer full)")
FILTERED = Counter("memtrail_sensor_events_filtered_total", "Calls dropped by the in-kernel filters")
RATE_LIMITED = Counter(
    "memtrail_sensor_events_rate_limited_total", "Noisy events dropped by the per-cgroup rate limit"
)
DECODE_ERRORS = Counter("memtrail_sensor_decode_errors_total", "Records that did not decode")
SPOOL_DEPTH = Gauge("memtrail_sensor_spool_depth_messages", "Kafka messages waiting in the disk spool")
SPOOL_DROPPED = Counter(
    "memtrail_sensor_spool_dropped_events_total", "Events dropped because the spool was full"
)
PRODUCER_ERRORS = Counter("memtrail_sensor_producer_errors_total", "Kafka delivery or client errors")
BATCHES = Counter("memtrail_sensor_batches_published_total", "EventBatch messages delivered to Kafka")
PUBLISHED = Counter("memtrail_sensor_events_published_total", "Events delivered to Kafka")
CONTAINERS = Counter("memtrail_sensor_container_updates_total", "ContainerMeta records published")
WIRE_BYTES = Counter(
    "memtrail_sensor_wire_bytes_total",
    "EventBatch JSON bytes handed to the Kafka producer (before compression; per event: / events encoded)",
)
WIRE_EVENTS = Counter("memtrail_sensor_wire_events_total", "Events encoded into EventBatch messages")
