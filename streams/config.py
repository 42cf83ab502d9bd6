"""Stream-tier settings (environment prefix ``MEMTRAIL_STREAM_``); shared ones are in memtrail.core.settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StreamOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMTRAIL_STREAM_", extra="ignore")

    #: Consumer group (and Faust app id) shared by every worker of one deployment.
    group_id: str = "memtrail-stream"
    #: Faust web server port: each worker on one host needs its own.
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    #: Prometheus /metrics, /healthz, /readyz; 0 disables.
    metrics_port: int = 9102
    #: stream.take(): at most this many Kafka messages (each an EventBatch) per batch...
    take_max: int = Field(default=500, ge=1)
    #: ...or what arrived within this many seconds.
    take_within_s: float = Field(default=0.002, gt=0)
    grouping_window_s: float = Field(default=60.0, gt=0)
    #: Alerts one process raises for one trigger (a shared evidence event) within this many
    #: seconds (event time) are one incident listing every pattern; 0 turns merging off.
    incident_window_s: float = Field(default=5.0, ge=0)
    #: An incident below critical is published this long after its first event (event time,
    #: at most the incident window) so one attack's patterns go out together; critical at once.
    incident_hold_s: float = Field(default=1.0, ge=0)
    #: Timer: how often held incidents are checked (a dict scan per partition).
    incident_release_interval_s: float = Field(default=0.25, gt=0)
    #: Extra seconds replayed before the longest pattern window on partition takeover.
    replay_margin_s: float = 5.0
    #: Cap on the replayed span: a library pattern with a 1 h window would otherwise mean
    #: re-reading an hour of a partition on every takeover. Longer windows lose older state.
    replay_max_window_s: float = Field(default=600.0, gt=0)
    #: ...and on the replayed messages per partition (each an EventBatch of up to ~1000 events).
    replay_max_messages: int = Field(default=2000, ge=1)
    replay: bool = True
    #: Timer: expire window state and publish absence ("A not followed by B") alerts that came due.
    flush_interval_s: float = Field(default=1.0, gt=0)
    #: Fetch long-poll wait used with the local broker (Faust hard-codes 1500 ms; Tansu sleeps on it).
    local_fetch_wait_ms: int = 10
    #: Compression of what the worker produces (enriched batches, alerts): lz4, zstd, gzip,
    #: snappy or "" for none.
    producer_compression: str = "lz4"
    #: How long the producer waits to fill a request. Every message is already a batch of
    #: events, and each agent waits for its output to be confirmed before taking the next
    #: batch, so a linger is added to every hop: 5 ms gave p99 187-241 ms at 80 % of a
    #: worker's capacity, 0 gave 132-255 (median 176) at the same throughput (docs/stream.md).
    producer_linger_ms: int = Field(default=0, ge=0, le=1000)
    #: lz4 level for it: 0-2 is LZ4's fast mode; aiokafka's own default 9 is LZ4-HC, ~10x slower.
    lz4_level: int = Field(default=0, ge=0, le=16)
    #: How each worker holds the container table: "table", a Faust GlobalTable whose changelog
    #: is the compacted containers topic; "reader", a confluent-kafka thread into a dict.
    container_join: Literal["table", "reader"] = "table"
    #: At most this long, the first enrichment batch waits for the table to reach the end of the topic.
    table_catch_up_s: float = Field(default=30.0, ge=0)
    #: Largest message the worker produces (enriched batch, alert, dead letter): a bigger
    #: enriched batch is split, a bigger alert shrunk; the producer's request limit is set above it.
    max_message_bytes: int = Field(default=900_000, ge=10_000)
    #: An agent busy on one batch for longer than this makes /readyz false (a wedged agent).
    stuck_after_s: float = Field(default=60.0, gt=0)
    #: At most this long an agent holds events of a partition whose state is being rebuilt.
    gate_timeout_s: float = Field(default=300.0, gt=0)
    #: On takeover, alerts published in the last (longest window + grouping window + this)
    #: seconds are read back so that re-processed events do not publish them again.
    dedup_margin_s: float = Field(default=60.0, ge=0)
    #: How often the broker watch probes the broker (readiness, lost logs); 0 turns it off.
    broker_watch_interval_s: float = Field(default=1.0, ge=0)
    #: The same log line (digits aside) is written at most once per this many seconds.
    log_repeat_interval_s: float = Field(default=30.0, gt=0)
    #: Consumer-group session timeout; None keeps Faust's 60 s (6 s with the local broker).
    #: A worker that died without leaving (or whose leave a broker dropped) holds its
    #: partitions, and the next join, until this much time has passed without a heartbeat.
    session_timeout_s: float | None = Field(default=None, ge=6, le=300)
    datadir: Path | None = None
    #: "module:function" returning an engine factory; default: patterns.engine.api.load_engine.
    engine_factory: str | None = None
