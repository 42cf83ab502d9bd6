"""The sensor process: attach, drain the ring buffer on a timer, enrich, publish, heartbeat."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from memtrail.core.kafka import BrokerUnreachable, check_reachable, ensure_topics
from memtrail.core.metrics import serve_metrics
from memtrail.core.settings import Settings
from sensors import metrics as M
from sensors.cgroups import CgroupResolver
from sensors.config import SensorSettings
from sensors.context import Context
from sensors.decoder import DecodeError, Decoder
from sensors.heartbeat import HeartbeatState
from sensors.proctable import ProcTable
from sensors.publisher import Publisher

log = logging.getLogger(__name__)


#: /healthz turns 503 when the drain loop has not turned for this long (the liveness probe's signal).
LOOP_STALL_S = 30.0


class Sensor:
    def __init__(self, settings: Settings, cfg: SensorSettings) -> None:
        self.settings = settings
        self.cfg = cfg
        self.host = settings.host_name
        self.decoder = Decoder(self.host, time.time() - time.monotonic(), lean=cfg.wire_version == 2)
        self.procs = ProcTable()
        self.cgroups = CgroupResolver()
        # v1 only: v2 needs the ancestors as objects (the batch's lineage table)
        self.context = Context(self.procs, self.cgroups, wire_lineage=cfg.wire_version == 1)
        self.publisher: Publisher | None = None
        self.program: Any = None
        self.ready = threading.Event()
        self.last_loop = time.monotonic()
        self.events_total = 0
        self.decode_errors = 0
        self._counts: dict[str, int] = {}
        self._lost_seen = 0
        self._filtered_seen = 0
        self._limited_seen = 0

    def _on_raw(self, raw: bytes) -> None:
        try:
            ev = self.context.apply(self.decoder.decode(raw))
        except (DecodeError, KeyError, ValueError) as exc:
            self.decode_errors += 1
            M.DECODE_ERRORS.inc()
            if self.decode_errors <= 10 or self.decode_errors % 1000 == 0:
                log.error("undecodable record (%d so far): %s", self.decode_errors, exc)
            return
        self.events_total += 1
        counts = self._counts
        name = ev["syscall"]
        counts[name] = counts.get(name, 0) + 1  # folded into Prometheus once a second
        self.publisher.add(ev)  # type: ignore[union-attr]

    def start(self) -> None:
        from ebpf.loader import TRACEPOINTS, SensorProgram

        reachable = True
        try:
            check_reachable(self.settings.kafka, timeout=5.0)
            ensure_topics(self.settings)
        except BrokerUnreachable as exc:
            reachable = False
            log.warning("%s: starting anyway, events are spooled until it answers", exc)
        self.publisher = Publisher(
            self.settings,
            self.cfg.spool_dir,
            max_batch=self.cfg.batch_size,
            flush_interval=self.cfg.flush_interval_ms / 1000,
            spool_max_bytes=self.cfg.spool_max_mb << 20,
            delivery_timeout_ms=self.cfg.delivery_timeout_ms,
            wire_version=self.cfg.wire_version,
            clock_offset=self.decoder.clock_offset,
        )
        if not reachable:
            self.publisher.spooling = True
        n = self.procs.scan()
        log.info("process table seeded with %d processes", n)
        self.program = SensorProgram(
            self._on_raw,
            open_prefixes=self.cfg.open_prefixes,
            path_prefixes=self.cfg.path_prefixes,
            write_prefixes=self.cfg.write_prefixes,
            open_filter=self.cfg.open_filter,
            mmap_filter=self.cfg.mmap_filter,
            connect_all=self.cfg.connect_all_families,
            ringbuf_pages=self.cfg.ringbuf_pages,
            allow_comms=self.cfg.allow_comms,
            rate_limit=self.cfg.rate_limit_per_cgroup,
        )
        self.heartbeat = HeartbeatState(self.host, list(TRACEPOINTS), self.cfg.heartbeat_interval_s)
        self.last_loop = time.monotonic()
        self.ready.set()
        log.info("sensor attached to %d tracepoints on %s", len(TRACEPOINTS), self.host)

    def is_ready(self) -> bool:
        """Programs attached and the producer delivering: not spooling through a broker outage."""
        return self.ready.is_set() and self.publisher is not None and not self.publisher.spooling

    def is_alive(self) -> bool:
        """Attached, and the drain loop turned recently: a wedged loop would lose events while the
        process lives. False while the program compiles (the start-up probe's window)."""
        return self.ready.is_set() and time.monotonic() - self.last_loop < LOOP_STALL_S

    def _report_counters(self, now: float, last: float) -> None:
        counts, self._counts = self._counts, {}
        for name, n in counts.items():
            M.EVENTS.labels(syscall=name).inc(n)
        c = self.program.counters()
        lost, filtered, limited = c["lost"], c["filtered"], c["rate_limited"]
        if limited > self._limited_seen:
            M.RATE_LIMITED.inc(limited - self._limited_seen)
            log.info(
                "rate limit dropped %d noisy events (%.0f/s)",
                limited - self._limited_seen,
                (limited - self._limited_seen) / max(now - last, 1e-6),
            )
        if lost > self._lost_seen:
            M.LOST.inc(lost - self._lost_seen)
            log.warning(
                "ring buffer full: %d events lost (%.0f/s); %d in total",
                lost - self._lost_seen,
                (lost - self._lost_seen) / max(now - last, 1e-6),
                lost,
            )
        if filtered > self._filtered_seen:
            M.FILTERED.inc(filtered - self._filtered_seen)
        self._lost_seen, self._filtered_seen, self._limited_seen = lost, filtered, limited

    def _send_heartbeat(self) -> None:
        pub = self.publisher
        assert pub is not None
        hb = self.heartbeat.build(self.events_total, self._lost_seen, pub.spool.depth, pub.producer_errors)
        hb.rate_limited_total = self._limited_seen
        if pub.spooling:
            return  # heartbeats are a live signal: not worth spooling
        try:
            pub._producer.produce(
                self.settings.topics.heartbeats, key=self.host.encode(), value=hb.model_dump_json().encode()
            )
        except (BufferError, Exception) as exc:
            log.debug("heartbeat not sent: %s", exc)

    def run(self, stop: threading.Event) -> None:
        """Drain every ``poll_interval_ms`` until ``stop`` is set; then flush."""
        if not self.ready.is_set():
            self.start()
        assert self.publisher is not None
        interval = self.cfg.poll_interval_ms / 1000
        last_report = last_hb = time.monotonic()
        self._send_heartbeat()
        try:
            while not stop.is_set():
                busy = self.program.poll(self.cfg.poll_budget) >= self.cfg.poll_budget
                self.publisher.tick()
                now = self.last_loop = time.monotonic()
                if now - last_report >= 1.0:
                    self._report_counters(now, last_report)
                    last_report = now
                if now - last_hb >= self.cfg.heartbeat_interval_s:
                    self._send_heartbeat()
                    last_hb = now
                if not busy:  # more records waiting: drain again at once
                    stop.wait(interval)
        finally:
            self.close()

    def close(self) -> None:
        if self.program is not None:
            self.program.poll()
            self._report_counters(time.monotonic(), time.monotonic() - 1)
            self.program.close()
            self.program = None
        if self.publisher is not None:
            self.publisher.close()
        self.ready.clear()


def serve(sensor: Sensor, port: int, host: str = "0.0.0.0") -> Any:
    return serve_metrics(port, host=host, ready=sensor.is_ready, alive=sensor.is_alive)
