"""The worker's view of its broker: reachable or not (readiness, metrics), and whether it
came back having lost its logs.

A thread asks the broker for metadata every ``interval_s``. While that fails, readiness is
false (``Health.broker_problem``), ``memtrail_stream_broker_up`` is 0 and
``memtrail_stream_broker_errors_total{error}`` counts why. Faust and aiokafka reconnect by
themselves to a broker that kept its data.

A broker that returns without its data (a restarted in-memory broker, a re-created
cluster) cannot be followed by the running Faust consumer: its positions, committed
offsets and table offsets point past the new logs' ends (Faust would skip the new records
or stop with a ConsistencyError). The watch sees it as a log that went backwards (a
partition's end offset below one seen before, or a topic gone) and then re-creates the
topics, has the worker's consumer leave its group, and re-executes the worker in place (same
pid, same command line): it rejoins with no committed offsets and reads the new logs from
their beginning.

``RateLimitFilter`` keeps the log readable meanwhile: one line per distinct message per
interval, then a count of the repeats.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge

from memtrail.core.kafka import consumer_config, ensure_topics
from memtrail.core.settings import Settings
from streams.background import Background
from streams.health import Health

log = logging.getLogger(__name__)

BROKER_UP = Gauge("memtrail_stream_broker_up", "1 while the broker answers metadata requests")
BROKER_ERRORS = Counter(
    "memtrail_stream_broker_errors_total",
    "Failed broker probes by error (the worker's broker watch)",
    ["error"],
)
BROKER_LOST = Counter(
    "memtrail_stream_broker_lost_logs_total",
    "Times the broker came back without the logs it had (topics re-created, worker re-executed)",
)


def _error_label(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args:
        err = exc.args[0]
        name = getattr(err, "name", None)
        if callable(name):
            return str(name())
    return type(exc).__name__


class BrokerWatch(Background):
    def __init__(
        self,
        settings: Settings,
        health: Health,
        interval_s: float = 1.0,
        timeout_s: float = 3.0,
        on_lost: Callable[[], None] | None = None,
        before_exec: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__("broker-watch")
        self.settings = settings
        self.health = health
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.on_lost = on_lost or self.recreate_and_reexec
        #: Run just before the re-exec: the worker's consumer leaves its group there, so the new
        #: process does not wait for the old member's session to expire.
        self.before_exec = before_exec
        self._topics = [settings.topics.raw, settings.topics.enriched, settings.topics.alerts]
        #: Highest end offset seen per partition: a log never goes backwards on a broker that kept it.
        self._high: dict[tuple[str, int], int] = {}

    def _run(self) -> None:
        consumer = Consumer(
            consumer_config(
                self.settings.kafka,
                f"memtrail-watch-{os.getpid()}",
                **{"socket.timeout.ms": int(self.timeout_s * 1000), "reconnect.backoff.max.ms": 1000},
            )
        )
        try:
            while not self._stop.is_set():
                self.probe(consumer)
                self._stop.wait(self.interval_s)
        finally:
            consumer.close()

    def probe(self, consumer: Any) -> None:
        try:
            meta = consumer.list_topics(timeout=self.timeout_s)
            if not meta.brokers:
                raise KafkaException("no broker in metadata")
            lost = self._lost(consumer, meta)
        except Exception as exc:
            BROKER_ERRORS.labels(_error_label(exc)).inc()
            BROKER_UP.set(0)
            if self.health.broker_problem is None:
                log.warning(
                    "broker %s unreachable: %s (not ready until it answers)",
                    self.settings.kafka.bootstrap,
                    exc,
                )
            self.health.broker_problem = str(exc)[:200] or type(exc).__name__
            return
        BROKER_UP.set(1)
        if self.health.broker_problem is not None:
            log.warning("broker %s reachable again", self.settings.kafka.bootstrap)
        if lost:
            # Not ready until the new process has its partitions: events sent now must not be
            # taken as seen by a worker that is about to replace itself.
            self.health.broker_problem = f"broker lost its logs ({lost}); restarting"
            BROKER_LOST.inc()
            log.warning("broker %s came back without its logs (%s)", self.settings.kafka.bootstrap, lost)
            self.on_lost()
            return
        self.health.broker_problem = None

    def _lost(self, consumer: Any, meta: Any) -> str | None:
        """Why the broker no longer has what it had, or None."""
        for topic in self._topics:
            tmeta = meta.topics.get(topic)
            known = [k for k in self._high if k[0] == topic]
            if tmeta is None or tmeta.error is not None:
                if known:
                    return f"topic {topic} gone"
                continue
            for p in sorted(tmeta.partitions):
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=self.timeout_s, cached=False
                )
                seen = self._high.get((topic, p), 0)
                if high < seen:
                    return f"{topic}/{p} ends at {high}, it ended at {seen} before"
                self._high[(topic, p)] = high
        return None

    def recreate_and_reexec(self) -> None:
        try:
            ensure_topics(self.settings)
        except Exception as exc:  # the new process's preflight tries again
            log.warning("topics not re-created: %s", exc)
        if self.before_exec is not None:
            t0 = time.monotonic()
            try:
                left, why = self.before_exec(), "no running consumer, or not stopped in time"
            except Exception as exc:  # the group then expires the old member by itself
                left, why = False, str(exc)
            if left:
                log.warning("consumer left its group in %.1fs; restarting", time.monotonic() - t0)
            else:
                log.warning("consumer did not leave its group (%s): the next join waits for it", why)
        logging.shutdown()
        argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
        os.execv(sys.executable, [sys.executable, *argv[1:]])


_DIGITS = re.compile(r"\d+")


class RateLimitFilter(logging.Filter):
    """One record per distinct message (digits ignored) per ``interval_s``; the next one after
    the interval says how many were dropped."""

    def __init__(self, interval_s: float = 30.0, max_keys: int = 1000) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        key = (record.name, record.levelno, _DIGITS.sub("#", text)[:120])
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.interval_s:
                self._last[key] = (last[0], last[1] + 1)
                return False
            if len(self._last) >= self.max_keys:
                self._last.clear()
            self._last[key] = (now, 0)
        if last is not None and last[1]:
            record.msg = f"{text} ({last[1]} more like it in the last {self.interval_s:.0f}s)"
            record.args = None
        return True


def rate_limit_logging(interval_s: float = 30.0) -> RateLimitFilter:
    """Put one RateLimitFilter on every handler of the root logger (Faust's and ours)."""
    filt = RateLimitFilter(interval_s)
    for handler in logging.getLogger().handlers:
        handler.addFilter(filt)
    return filt
