"""``memtrail sensor`` as the orchestrator runs it: a subprocess with clear refusals and a clean stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from memtrail.core.broker import free_port
from memtrail.core.settings import Settings
from tests.paths import REPO
from tests.sensors.test_pipeline import consume_all, events_of

MEMTRAIL = str(REPO / ".venv" / "bin" / "memtrail")


def _run(
    *args: str, env: dict[str, str] | None = None, user: bool = False
) -> subprocess.CompletedProcess[str]:
    cmd = [MEMTRAIL, "sensor", *args]
    if user:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def _start_sensor(
    bootstrap: str, port: int, spool: Path, env: dict[str, str], log: Any
) -> subprocess.Popen[Any]:
    """`memtrail sensor` as an orchestrator starts it; stderr to a file (a full pipe would block it)."""
    cmd = [
        MEMTRAIL,
        "sensor",
        "--bootstrap",
        bootstrap,
        "--metrics-port",
        str(port),
        "--spool-dir",
        str(spool),
    ]
    return subprocess.Popen(cmd, env=env, stderr=log)


def test_print_bpf() -> None:
    p = _run("--print-bpf")
    assert p.returncode == 0
    assert "TRACEPOINT_PROBE(sched, sched_process_exec)" in p.stdout
    assert "struct mt_hdr" in p.stdout  # the shared header is inlined
    assert "-DOFF_TASK_MM=" in p.stdout.splitlines()[0]


def test_refuses_without_broker_setting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_KAFKA")}
    p = _run(env=env)
    assert p.returncode == 2
    assert "no Kafka bootstrap server" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop privileges")
def test_refuses_without_privileges() -> None:
    p = _run("--bootstrap", "127.0.0.1:1", user=True)
    assert p.returncode == 2
    assert "needs root or CAP_BPF" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.ebpf
@pytest.mark.broker
@pytest.mark.slow
def test_subprocess_publishes_and_stops_cleanly(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "MEMTRAIL_TOPICS__RAW": settings.topics.raw,
        "MEMTRAIL_TOPICS__HEARTBEATS": settings.topics.heartbeats,
    }
    bootstrap = settings.kafka.bootstrap
    assert bootstrap
    log = (tmp_path / "sensor.log").open("w")  # a file, not a pipe: a full pipe would block the sensor
    proc = _start_sensor(bootstrap, port, tmp_path / "spool", env, log)
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200
            except OSError:
                ready = False
            if ready:
                break
            time.sleep(0.2)
        assert ready, f"sensor never became ready: {(tmp_path / 'sensor.log').read_text()[-2000:]}"
        script = (
            "import os;fd=os.memfd_create('cli');os.write(fd,open('/bin/true','rb').read());"
            "os.execv(f'/proc/self/fd/{fd}',['cli-payload'])"
        )
        subprocess.run(["python3", "-c", script], check=True)
        deadline = time.monotonic() + 10
        metrics = ""
        while 'syscall="execve"' not in metrics and time.monotonic() < deadline:
            time.sleep(0.3)  # counters are folded into Prometheus once a second
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        assert 'memtrail_sensor_events_total{syscall="execve"}' in metrics, (
            tmp_path / "sensor.log"
        ).read_text()[-2000:]
        assert "memtrail_sensor_events_lost_total" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop flushes what is pending
        proc.wait(timeout=30)
        log.close()
    err = (tmp_path / "sensor.log").read_text()
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    msgs = consume_all(
        bootstrap,
        settings.topics.raw,
        until=lambda out: any(e["syscall"] == "execve" and e["args"]["exe_memfd"] for e in events_of(out)),
    )
    x = [e for e in events_of(msgs) if e["syscall"] == "execve" and e["args"]["exe_memfd"]]
    assert x and x[0]["args"]["argv"] == ["cli-payload"] and x[0]["process"]["exe"] == "memfd:cli"


def _status(url: str) -> int:
    try:
        return int(urllib.request.urlopen(url, timeout=1).status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _wait_status(url: str, want: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _status(url) == want:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.ebpf
@pytest.mark.broker
@pytest.mark.slow
def test_readiness_follows_the_broker_and_liveness_the_loop(tmp_path: Path) -> None:
    """/readyz is 503 while the sensor spools through a broker outage and 200 again after it;
    /healthz stays 200 (the drain loop keeps turning)."""
    from memtrail.core.broker import LocalBroker

    broker = LocalBroker(log_path=tmp_path / "tansu.log").start()
    port = free_port()
    log = (tmp_path / "sensor.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")}
    proc = _start_sensor(broker.bootstrap, port, tmp_path / "spool", env, log)
    ready, health = f"http://127.0.0.1:{port}/readyz", f"http://127.0.0.1:{port}/healthz"
    try:
        assert _wait_status(ready, 200, 90), (tmp_path / "sensor.log").read_text()[-2000:]
        broker.stop()
        subprocess.run(["/bin/true"], check=True)  # an event to deliver
        assert _wait_status(ready, 503, 30), "readiness stayed 200 with the broker gone"
        assert _status(health) == 200
        broker.start()  # same port, empty storage: the sensor replays its spool into it
        assert _wait_status(ready, 200, 60), (tmp_path / "sensor.log").read_text()[-2000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        broker.stop()
    assert proc.returncode == 0
