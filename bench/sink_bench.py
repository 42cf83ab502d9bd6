"""Sink benchmark: alerts/s through the real sink loop on the local broker.

    .venv/bin/python -m bench.sink_bench [--alerts 20000] [--batch 500 2000]

Produces N alerts to a fresh local broker, then runs the sink loop until all are
delivered, for: the Wazuh file route (real file, fsync per batch) and the OpenSearch route
against an in-process HTTP server that accepts every bulk item (OpenSearch cannot run
here, so this measures the sink's own cost: encoding, HTTP, commit). Also times the pure
bulk-body encoding. Prints one table row per sink and batch size.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from memtrail.core.broker import LocalBroker
from memtrail.core.kafka import ensure_topics, producer_config
from memtrail.core.settings import KafkaSettings, Settings
from schemas.alerts import Alert
from sinks.base import SinkRunner
from sinks.metrics import DELIVERIES
from sinks.opensearch.config import OpenSearchSettings
from sinks.opensearch.documents import bulk_body
from sinks.opensearch.sink import OpenSearchSink
from sinks.wazuh.config import WazuhSettings
from sinks.wazuh.file_sink import WazuhFileSink


def alert(i: int) -> dict[str, Any]:
    ts = datetime(2026, 11, 22, tzinfo=UTC) + timedelta(milliseconds=i)
    return Alert.model_validate(
        {
            "id": f"bench-{i:08d}",
            "@timestamp": ts,
            "rule": {
                "id": "MT-FILELESS-001",
                "name": "memfd exec",
                "severity": "critical",
                "tags": ["fileless"],
            },
            "threat": {"technique": {"id": ["T1620"], "name": ["Reflective Code Loading"]}},
            "container": {"id": "c" * 64, "name": "web", "image": "nginx:1", "labels": {"app": "web"}},
            "process": {
                "pid": i,
                "ppid": 1,
                "executable": "/proc/self/fd/3",
                "command_line": "x -y",
                "uid": 0,
            },
            "host": {"name": "node-1"},
            "message": "fileless execution from a memfd",
            "evidence": [
                {"syscall": "memfd_create", "args": {"name": "x", "flags": ["MFD_CLOEXEC"]}, "ret": 3},
                {"syscall": "execveat", "args": {"dirfd": 3, "flags": ["AT_EMPTY_PATH"]}, "ret": 0},
            ],
            "first_seen": ts,
            "last_seen": ts,
        }
    ).to_json_dict()


def accept_all_server() -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            n = body.count(b"\n") // 2
            out = orjson.dumps({"errors": False, "items": [{"index": {"status": 201}}] * n})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def run(sink: Any, settings: Settings, n: int, batch: int, group: str) -> float:
    runner = SinkRunner(sink, settings, group_id=group, batch_size=batch, batch_timeout=0.05)
    stop = threading.Event()
    before = DELIVERIES.labels(sink.name)._value.get()
    t = threading.Thread(target=runner.run, args=(stop,))
    t.start()
    while not runner.ready:
        time.sleep(0.01)
    while DELIVERIES.labels(sink.name)._value.get() - before < 1:
        time.sleep(0.001)
    start = time.perf_counter()
    first = DELIVERIES.labels(sink.name)._value.get() - before
    while DELIVERIES.labels(sink.name)._value.get() - before < n:
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    stop.set()
    t.join()
    return (n - first) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=20000)
    ap.add_argument("--batch", type=int, nargs="+", default=[500, 2000])
    args = ap.parse_args()
    alerts = [alert(i) for i in range(args.alerts)]

    t0 = time.perf_counter()
    for start in range(0, len(alerts), 500):
        bulk_body(alerts[start : start + 500])
    enc = len(alerts) / (time.perf_counter() - t0)

    rows = [("bulk_body encode (pure)", "500", f"{enc:,.0f}")]
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(kafka=KafkaSettings(bootstrap=broker.bootstrap, local_broker=True))
        ensure_topics(settings)
        p = Producer(producer_config(settings.kafka))
        for a in alerts:
            p.produce(settings.topics.alerts, key=a["id"].encode(), value=orjson.dumps(a))
            p.poll(0)
        p.flush(60)
        srv = accept_all_server()
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        for batch in args.batch:
            cfg = WazuhSettings(file_path=Path(tmp) / f"alerts-{batch}.json")
            rate = run(WazuhFileSink(cfg), settings, args.alerts, batch, f"bench-file-{batch}")
            rows.append(("wazuh file (fsync per batch)", str(batch), f"{rate:,.0f}"))
            os_sink = OpenSearchSink(OpenSearchSettings(url=url, setup=False))
            rate = run(os_sink, settings, args.alerts, batch, f"bench-os-{batch}")
            rows.append(("opensearch bulk (accept-all server)", str(batch), f"{rate:,.0f}"))
        srv.shutdown()

    print(f"{'sink':<38} {'batch':>6} {'alerts/s':>10}")
    for name, batch_s, rate_s in rows:
        print(f"{name:<38} {batch_s:>6} {rate_s:>10}")


if __name__ == "__main__":
    main()
