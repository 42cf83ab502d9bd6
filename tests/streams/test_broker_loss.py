"""A real ``memtrail worker`` through a broker outage: Tansu killed for 20 s, then started
again on the same port with memory storage, i.e. empty (its topics, offsets and groups
gone), once as an external broker and once as the local one.

While it is down: /readyz false, ``memtrail_stream_broker_up`` 0, errors counted, a
handful of log lines instead of a hundred per second. After: the same worker process is
ready again by itself and alerts on a new attack.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from memtrail.core.broker import LocalBroker, free_port
from streams.pause import read_published
from tests.streams.conftest import module_settings
from tests.streams.helpers import ARTIFACTS, WorkerProc, batch, memfd_pair, metric, produce

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _until(pred: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize("local", ["false", "true"], ids=["external", "local"])
def test_worker_rides_out_a_broker_outage_and_an_empty_broker(local: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    tansu_log = ARTIFACTS / f"tansu-loss-{local}.log"
    broker = LocalBroker(port=port, log_path=tansu_log).start()
    s = module_settings(broker, f"loss{local}")
    log = ARTIFACTS / f"worker-test_broker_loss-{local}.log"
    log.write_bytes(b"")
    # Against an external broker a member the old consumer registered can outlive the re-exec:
    # Tansu dropped the coordinator connection of its LeaveGroup in 1 run of 3 here, and the
    # member then holds the next join for the whole session timeout (Faust's default: 60 s).
    env = {} if local == "true" else {"MEMTRAIL_STREAM_SESSION_TIMEOUT_S": "10"}
    worker = WorkerProc(s, log, f"g-loss-{local}", MEMTRAIL_KAFKA__LOCAL_BROKER=local, **env)
    try:
        worker.wait_ready(90)
        produce(s, s.topics.raw, [batch(memfd_pair(pid=61000))])
        assert _until(lambda: read_published(s.kafka, s.topics.alerts, 600), 30)

        pid = worker.proc.pid
        broker.stop()
        t_down = time.monotonic()
        assert _until(lambda: not worker.ready(), 15), "still ready with the broker down"
        text = worker.metrics()
        assert metric(text, "memtrail_stream_broker_up") == 0
        assert metric(text, "memtrail_stream_broker_errors_total") > 0
        assert metric(text, "memtrail_stream_not_ready") >= 1
        lines_before = len(log.read_text(errors="replace").splitlines())
        time.sleep(max(0.0, 20 - (time.monotonic() - t_down)))
        outage_lines = len(log.read_text(errors="replace").splitlines()) - lines_before
        assert outage_lines < 60, f"{outage_lines} log lines in a 20 s outage"
        assert worker.proc.poll() is None

        broker = LocalBroker(port=port, log_path=tansu_log).start()  # empty: memory storage
        t_back = time.monotonic()
        # The watch keeps the worker not ready from the moment it sees the lost logs until the
        # re-executed process has its partitions: an attack sent once it is ready is consumed.
        # The old consumer leaves its group before the re-exec, so nothing waits for its session.
        assert _until(worker.ready, 90), f"not ready again\n{worker.tail()}"
        print(f"ready again {time.monotonic() - t_back:.0f} s after the broker came back")
        assert worker.proc.poll() is None and worker.proc.pid == pid

        produce(s, s.topics.raw, [batch(memfd_pair(pid=61001))])

        def alerted() -> bool:
            return any(d["process"]["pid"] == 61001 for d in read_published(s.kafka, s.topics.alerts, 600))

        assert _until(alerted, 60), f"no alert after the outage\n{worker.tail()}"
        assert worker.ready() and worker.proc.poll() is None
    finally:
        worker.stop()
        broker.stop()


def test_rate_limit_filter_writes_one_line_per_message_per_interval(tmp_path: Path) -> None:
    import logging

    from streams.brokerwatch import RateLimitFilter

    out = tmp_path / "log"
    handler = logging.FileHandler(out)
    handler.addFilter(RateLimitFilter(interval_s=0.5))
    lg = logging.getLogger("test.ratelimit")
    lg.addHandler(handler)
    lg.propagate = False
    for i in range(200):
        lg.error("Unable connect to node with id %d: refused", i % 3)
    lg.error("another error")
    time.sleep(0.6)
    lg.error("Unable connect to node with id 1: refused")
    handler.close()
    lines = out.read_text().splitlines()
    assert len(lines) == 3, lines
    assert "199 more like it" in lines[2]
