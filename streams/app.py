"""The Faust app: raw → enrichment agent → enriched → correlation agent → alerts.

Agents are thin shells: they turn a batch of stream events into ``streams.step.Inbound``
messages, call a pure step (``enrich.enrich_step``, ``correlate_step.correlate_step`` /
``audit_step``; the timers ``flush_step`` / ``release_step``), send its ``out`` to their
output topic and its ``dead`` to the dead letters, and confirm the sends before the next
batch. Messages are EventBatch JSON read with the raw
serializer and decoded with orjson: no Faust Record per event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
import orjson
from faust.types import TP

from memtrail.core.settings import Settings
from streams import metrics as m
from streams.brokerwatch import BrokerWatch, rate_limit_logging
from streams.config import StreamOptions
from streams.containers import ContainerView
from streams.correlate import Correlator, PartKey
from streams.correlate_step import (
    AUDIT,
    CorrelateContext,
    assignment,
    audit_step,
    correlate_step,
    flush_step,
    release_step,
)
from streams.deadletter import reason_label
from streams.enrich import EnrichContext, annotate_trails, enrich_step
from streams.faust_patches import (
    ExternalChangelogTable,
    leave_consumer_group,
    patch_fetch_wait,
    patch_lz4_level,
)
from streams.guard import reason_of
from streams.health import Health
from streams.kafka_auth import faust_credentials
from streams.pause import AlertLedger, PartitionGate, read_published
from streams.recovery import replay_batches
from streams.sessions import PodSessions, SessionStamper
from streams.step import Dead, Inbound, Outbound
from streams.topic_reader import TopicReader
from streams.trails.loader import TrailSettings, TrailStore

log = logging.getLogger(__name__)


@dataclass
class Pipeline:
    """What the agents share inside one worker process."""

    settings: Settings
    opts: StreamOptions
    correlator: Correlator
    #: Container id -> ContainerMeta: a ``ContainerView`` of the GlobalTable, or the dict
    #: that ``on_container`` fills (``MEMTRAIL_STREAM_CONTAINER_JOIN=reader``).
    containers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    pattern_ops: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    readers: list[TopicReader] = field(default_factory=list)
    ready: bool = False
    #: Exec/attach sessions per pod from all of memtrail.k8s.audit (written by a reader thread).
    sessions: PodSessions = field(default_factory=PodSessions)
    sessions_lock: threading.Lock = field(default_factory=threading.Lock)
    stamper: SessionStamper | None = None
    trails: TrailStore | None = None
    trail_settings: TrailSettings = field(default_factory=TrailSettings)
    #: Partitions of the container table's changelog to catch up with before the first batch.
    table_tps: list[TP] = field(default_factory=list)
    #: Partitions whose state is being replayed (in a thread): the flush timer leaves them alone.
    replaying: set[PartKey] = field(default_factory=set)
    health: Health = field(default_factory=Health)
    #: Partitions whose events the agents hold until their state is rebuilt (streams.pause).
    gate: PartitionGate = field(default_factory=PartitionGate)
    ledger: AlertLedger = field(default_factory=AlertLedger)
    watch: BrokerWatch | None = None

    def is_ready(self) -> bool:
        return self.health.ready(self.ready)

    def __post_init__(self) -> None:
        self.stamper = SessionStamper(self.sessions)

    # -- global readers (every worker reads all partitions) --------------------------
    def on_container(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or not isinstance(self.containers, dict):
            return
        cid = key.decode()
        if value is None:
            self.containers.pop(cid, None)  # tombstone
            return
        meta = orjson.loads(value)
        if isinstance(meta, dict):
            self.containers[cid] = meta

    def on_pattern(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key:
                self.pattern_ops.append(("delete", {"id": key.decode()}))
            return
        doc = orjson.loads(value)
        if isinstance(doc, dict) and isinstance(doc.get("spec"), dict):
            self.pattern_ops.append((str(doc.get("op", "upsert")), doc["spec"]))
        else:
            log.warning("patterns topic: ignored message without spec (key %r)", key)

    def on_audit(self, key: bytes | None, value: bytes | None) -> None:
        if not value:
            return
        doc = orjson.loads(value)
        if isinstance(doc, dict):
            with self.sessions_lock:
                self.sessions.observe(doc)

    def start_readers(self) -> None:
        k = self.settings.kafka
        self.readers = [
            TopicReader(k, self.settings.topics.patterns, self.on_pattern, "patterns").start(),
            # Sessions live window_s: older audit records cannot stamp anything.
            TopicReader(
                k,
                self.settings.topics.k8s_audit,
                self.on_audit,
                "k8s-sessions",
                since_s=self.sessions.window_s + 60,
            ).start(),
        ]
        if self.opts.container_join == "reader":
            reader = TopicReader(k, self.settings.topics.containers, self.on_container, "containers")
            self.readers.append(reader.start())

    def annotate(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """Trails on connect events, pod sessions on pod events (after the container join).

        Returns the events and whether any was changed or added."""
        changed = False
        if self.trails is not None and len(self.trails.matcher):
            hits = annotate_trails(events, self.trails.matcher)
            if hits:
                m.ANNOTATED.labels("trail").inc(hits)
                changed = True
        if self.stamper is not None and len(self.sessions):
            with self.sessions_lock:
                out = self.stamper.stamp(events)
            if out is not events:
                stamped = sum(1 for e in out if "k8s_session" in e and e["syscall"] != "k8s_session")
                m.ANNOTATED.labels("k8s_session").inc(stamped)
                return out, True
        return events, changed

    def enrich_context(self) -> EnrichContext:
        """What the enrichment step reads for the next batch."""
        return EnrichContext(
            containers=self.containers,
            annotate=self.annotate,
            trails=self.trails is not None and len(self.trails.matcher) > 0,
            sessions=self.stamper is not None and len(self.sessions) > 0,
            limit=self.opts.max_message_bytes,
        )

    def apply_pattern_ops(self) -> None:
        while self.pattern_ops:
            op, spec = self.pattern_ops.pop(0)
            try:
                errors = self.correlator.apply_pattern_op(op, spec)
            except Exception as exc:  # a hostile pattern message must not stop the agent
                log.warning("custom pattern %r not applied: %s", str(spec.get("id", "?"))[:80], exc)
                continue
            for err in errors or ():
                log.warning("custom pattern not applied: %s", err)


def inbound(batch: list[Any]) -> list[Inbound]:
    """Faust stream events as the steps' messages."""
    return [
        Inbound(ev.message.tp.topic, ev.message.tp.partition, ev.message.offset, ev.message.key, ev.value)
        for ev in batch
    ]


def build_app(settings: Settings, opts: StreamOptions, correlator: Correlator) -> tuple[faust.App, Pipeline]:
    kafka = settings.kafka
    assert kafka.bootstrap, "bootstrap must be set before building the app"
    topics = settings.topics
    pipe = Pipeline(settings=settings, opts=opts, correlator=correlator)
    pipe.health.stuck_after_s = opts.stuck_after_s
    pipe.trails = TrailStore.from_settings(pipe.trail_settings)
    datadir = opts.datadir or Path(tempfile.mkdtemp(prefix="memtrail-faust-"))
    conf: dict[str, Any] = {
        "broker": [f"kafka://{h.strip()}" for h in kafka.bootstrap.split(",")],
        "store": "memory://",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "web_port": opts.web_port,
        "web_bind": opts.web_host,
        "web_host": opts.web_host,
        "datadir": str(datadir),
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
        "topic_disable_leader": True,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,
        "producer_linger_ms": opts.producer_linger_ms,
        "producer_compression_type": opts.producer_compression or None,
        "producer_max_request_size": opts.max_message_bytes + 65536,
        "broker_credentials": faust_credentials(kafka.security),
    }
    if opts.producer_compression == "lz4":
        patch_lz4_level(opts.lz4_level)
    if kafka.local_broker:  # Tansu: every group join waits session.timeout/2
        conf.update(broker_session_timeout=6, broker_heartbeat_interval=1, broker_rebalance_timeout=20)
        # Tansu's ListOffsets(LATEST) can be below the true end: a table that already read
        # further would fail Faust's "offset > highwater" check on the next rebalance.
        conf.update(recovery_consistency_check=False)
        patch_fetch_wait(opts.local_fetch_wait_ms)
    if opts.session_timeout_s is not None:
        conf.update(
            broker_session_timeout=opts.session_timeout_s,
            broker_heartbeat_interval=max(1.0, opts.session_timeout_s / 6),
        )
    app = faust.App(opts.group_id, **conf)

    raw_t = app.topic(topics.raw, internal=False)
    enriched_t = app.topic(topics.enriched, internal=False)
    alerts_t = app.topic(topics.alerts, internal=False)
    dead_t = app.topic(topics.deadletter, internal=False)
    audit_t = app.topic(topics.k8s_audit, internal=False)
    if opts.container_join == "table":
        # The compacted containers topic is the table's changelog: no writes of our own. Every
        # worker holds all of it (global) and keeps following it after recovery:
        # synchronize_all_active_partitions keeps its partitions standbys too (else a worker
        # stops reading the ones it owns as "actives" once recovered), and a record of a
        # partition that is both is buffered as an active one: recovery_buffer_size=1 applies
        # it at once (with Faust's 1000 an update waited for 999 more).
        containers_t = app.topic(
            topics.containers, key_type=bytes, value_type=bytes, partitions=kafka.partitions, internal=False
        )
        table = ExternalChangelogTable(  # what app.GlobalTable() builds, with our class
            app,
            name="containers",
            beacon=app.tables.beacon,
            key_type=bytes,
            value_type=bytes,
            partitions=kafka.partitions,
            changelog_topic=containers_t,
            standby_buffer_size=1,
            recovery_buffer_size=1,
            is_global=True,
            synchronize_all_active_partitions=True,
        )
        pipe.containers = ContainerView(cast(Mapping[bytes, bytes], app.tables.add(table)))
        pipe.table_tps = [TP(topics.containers, p) for p in range(kafka.partitions)]

    async def container_table_caught_up() -> None:
        """Hold the first enrichment batch until the table applied its changelog up to the
        high watermark of the fetch responses. Faust's recovery stops at ListOffsets(LATEST);
        Tansu answers that with the newest batch's base offset + 1, so a recovered worker
        could join its first events against a table short by the rest of that batch (seen:
        a stale ContainerMeta and unknown containers). With Kafka it is at once true."""
        recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
        deadline = time.monotonic() + opts.table_catch_up_s
        behind: list[TP] = []
        while time.monotonic() < deadline:
            behind = []
            for tp in pipe.table_tps:
                try:
                    hw = app.consumer.highwater(tp)
                except AssertionError:  # not assigned (yet)
                    hw = None
                done = recovery.active_offsets.get(tp)
                if hw is None or (hw > 0 and (done is None or done < hw - 1)):
                    behind.append(tp)
            if not behind:
                return
            await asyncio.sleep(0.05)
        log.warning(
            "container table not caught up after %.0fs on %s: enriching anyway", opts.table_catch_up_s, behind
        )

    #: Sends of the current batches not yet confirmed by the broker. An agent confirms its
    #: batch's sends before taking the next one (when Faust acks the batch and may commit):
    #: an offset is never committed before what it produced is on the broker.
    inflight: list[Any] = []

    async def confirm_sent() -> None:
        if not inflight:
            return
        futs = list(inflight)
        inflight.clear()
        for res in await asyncio.gather(*futs, return_exceptions=True):
            if isinstance(res, BaseException):
                m.PUBLISH_FAILED.labels(type(res).__name__).inc()
                log.warning("a produced message was not confirmed: %s", res)

    async def send(topic: Any, step: tuple[list[Outbound], list[Dead]]) -> None:
        """What a step returned: ``out`` to ``topic``, ``dead`` to the dead letters."""
        out, dead = step
        for o in out:
            inflight.append(await topic.send(key=o.key, value=o.value))
        for d in dead:
            m.DEADLETTER.labels(reason_label(d.reason)).inc()
            inflight.append(await dead_t.send(key=d.record_key, value=d.record()))

    async def wait_gates(agent: str, parts: set[PartKey]) -> None:
        """Hold until the state of ``parts`` is rebuilt (streams.pause)."""
        if parts and any(pipe.gate.is_closed(p) for p in parts):
            still = await pipe.gate.wait(parts, opts.gate_timeout_s)
            if still:
                log.warning(
                    "%s: state of %s not rebuilt in %.0fs: processing anyway",
                    agent,
                    still,
                    opts.gate_timeout_s,
                )

    def update_lag(batch: list[Inbound]) -> None:
        last = {(msg.topic, msg.partition): msg.offset for msg in batch}
        for (topic, partition), offset in last.items():
            hw = app.consumer.highwater(TP(topic, partition))
            if hw is not None:
                m.LAG.labels(topic, str(partition)).set(max(0, hw - offset - 1))

    def correlate_context() -> CorrelateContext:
        return CorrelateContext(
            correlator,
            topics.enriched,
            topics.k8s_audit,
            topics.alerts,
            ledger=pipe.ledger,
            limit=opts.max_message_bytes,
        )

    @app.agent(raw_t, name="enrich")
    async def enrich_agent(stream: Any) -> None:
        try:
            async for batch in stream.take_events(opts.take_max, within=opts.take_within_s):
                if pipe.table_tps:
                    await container_table_caught_up()
                    pipe.table_tps = []  # once: the table keeps following the topic afterwards
                t_start = time.perf_counter()
                pipe.health.begin("enrich")
                msgs = inbound(batch)
                await send(enriched_t, enrich_step(pipe.enrich_context(), msgs))
                await confirm_sent()
                update_lag(msgs)
                pipe.health.end("enrich")
                m.PROCESSING.labels("enrich", "batch").observe(time.perf_counter() - t_start)
        finally:
            pipe.health.stopped("enrich")

    @app.agent(enriched_t, name="correlate")
    async def correlate_agent(stream: Any) -> None:
        try:
            async for batch in stream.take_events(opts.take_max, within=opts.take_within_s):
                await wait_gates("correlate", {ev.message.tp.partition for ev in batch})
                pipe.health.begin("correlate")
                pipe.apply_pattern_ops()
                t_start = time.perf_counter()
                msgs = inbound(batch)
                await send(alerts_t, correlate_step(correlate_context(), msgs))
                await confirm_sent()
                pipe.health.end("correlate")
                m.PROCESSING.labels("correlate", "batch").observe(time.perf_counter() - t_start)
                update_lag(msgs)
        finally:
            pipe.health.stopped("correlate")

    @app.agent(audit_t, name="audit")
    async def audit_agent(stream: Any) -> None:
        """Kubernetes audit events (one per message): validated, no container join, own engines."""
        try:
            async for batch in stream.take_events(opts.take_max, within=opts.take_within_s):
                await wait_gates("audit", {(AUDIT, ev.message.tp.partition) for ev in batch})
                pipe.health.begin("audit")
                pipe.apply_pattern_ops()
                t_start = time.perf_counter()
                msgs = inbound(batch)
                await send(alerts_t, audit_step(correlate_context(), msgs))
                update_lag(msgs)
                await confirm_sent()
                pipe.health.end("audit")
                m.PROCESSING.labels("audit", "batch").observe(time.perf_counter() - t_start)
        finally:
            pipe.health.stopped("audit")

    def contained(fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """A timer whose failure is logged and counted: Faust would stop the worker on it."""

        @functools.wraps(fn)
        async def run() -> None:
            try:
                await fn()
            except Exception as exc:
                m.TIMER_ERRORS.labels(fn.__name__).inc()
                log.warning("timer %s failed: %s", fn.__name__, reason_of("error", exc))

        return run

    @app.timer(interval=opts.flush_interval_s)
    @contained
    async def flush_timer() -> None:
        """Expire window state and publish absence alerts that came due without a new event."""
        now = time.time()
        await send(alerts_t, flush_step(correlate_context(), now, set(pipe.replaying) | pipe.gate.closed))
        with pipe.sessions_lock:
            pipe.sessions.expire(now)
        m.PROCESSING.labels("correlate", "expire").observe(time.time() - now)

    @app.timer(interval=opts.incident_release_interval_s)
    @contained
    async def release_incidents() -> None:
        """Publish the incidents whose hold ran out (below critical, no pattern joined)."""
        now = time.time()
        await send(alerts_t, release_step(correlate_context(), now, set(pipe.replaying) | pipe.gate.closed))

    @app.timer(interval=pipe.trail_settings.reload_interval_s)
    @contained
    async def reload_trails() -> None:
        if pipe.trails is not None and await asyncio.to_thread(pipe.trails.reload_if_changed):
            log.info("trail lists reloaded: %d indicators", len(pipe.trails.matcher))

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app_: Any, assigned: set[TP], **_: Any) -> None:
        drop, new = assignment(
            correlator.partitions(),
            ((tp.topic, tp.partition) for tp in assigned),
            topics.enriched,
            topics.k8s_audit,
        )
        for part in drop:
            correlator.drop(part)
            pipe.gate.open(part)
        if opts.replay:
            # Before the first await: the agents hold these partitions' events from now on.
            pipe.gate.close(new)
        if new and opts.replay:
            try:
                since = correlator.longest_window_s + opts.grouping_window_s + opts.dedup_margin_s
                docs = await asyncio.to_thread(read_published, kafka, topics.alerts, since)
                n_seen = pipe.ledger.seed(docs)
                log.info("takeover: %d alert publications of the last %.0fs known", n_seen, since)
            except Exception as exc:
                log.warning("takeover: published alerts not read (%s): repeats possible", exc)
        for part in sorted(new, key=str):
            correlator.assign(part)
            if opts.replay:
                pipe.replaying.add(part)
                try:
                    n = await asyncio.to_thread(_replay, part)
                except Exception as exc:  # a failed rebuild must not stop the worker
                    log.warning("partition %s: state rebuild failed (%s): earlier steps forgotten", part, exc)
                    n = 0
                finally:
                    pipe.replaying.discard(part)
                    pipe.gate.open(part)
                if n:
                    log.info("partition %s: state rebuilt from %d replayed events", part, n)
        m.ASSIGNED.set(sum(1 for tp in assigned if tp.topic == topics.enriched))
        pipe.ready = True

    def _replay(part: PartKey) -> int:
        if isinstance(part, tuple):
            topic, number = topics.k8s_audit, int(part[1])
        else:
            topic, number = topics.enriched, int(part)  # type: ignore[call-overload]
        since = min(correlator.longest_window_s, opts.replay_max_window_s) + opts.replay_margin_s
        total = 0
        for events in replay_batches(
            kafka, topic, number, opts.group_id, since, max_messages=opts.replay_max_messages
        ):
            correlator.replay(part, events)
            total += len(events)
        correlator.finish_replay(part)
        m.REPLAYED.inc(total)
        return total

    @app.task
    async def start_readers() -> None:
        # Faust configured logging at start-up (root at WARNING): our own INFO lines stay visible.
        logging.getLogger("streams").setLevel(settings.log_level.upper())
        # After Faust set up its handlers: a broker outage is one line per error per interval.
        rate_limit_logging(opts.log_repeat_interval_s)
        pipe.start_readers()
        if opts.broker_watch_interval_s > 0:
            pipe.watch = BrokerWatch(
                settings,
                pipe.health,
                interval_s=opts.broker_watch_interval_s,
                before_exec=lambda: leave_consumer_group(app),
            ).start()

    return app, pipe
