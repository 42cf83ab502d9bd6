"""``memtrail up`` guards its own broker and the sensor spool, and keeps the shim on loopback.

The real ``up`` (subprocess) and its real local broker (Tansu), which the tests SIGKILL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import UpProc, port_args

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def broker_pid(up: UpProc) -> int:
    """The Tansu process ``up`` started (its child), found through /proc, never by name."""
    pid = up.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"broker" in argv and b"--listener-url" in argv:
            return int(child)
    raise AssertionError(f"no broker among the children {children} of up ({pid})")


def listeners(port: int) -> set[str]:
    """Local addresses listening on ``port`` (IPv4 and IPv6), from /proc/net/tcp*."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, _remote, state = line.split()[1:4]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                if len(addr) == 8:
                    out.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, 32, 8))
                    out.add(socket.inet_ntop(socket.AF_INET6, raw))
    return out


def wait_until(cond, timeout: float, step: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    return None


def test_shim_on_loopback_and_a_killed_broker_is_restarted() -> None:
    args = port_args()
    shim_port = int(args[args.index("--shim-port") + 1])
    up = UpProc("--no-sensor", *args)
    try:
        assert up.wait_for("memtrail up: ready", timeout=120), up.tail()
        assert listeners(shim_port) == {"127.0.0.1"}, listeners(shim_port)
        bootstrap = next(m.group(1) for x in up.stderr if (m := re.search(r"on (127\.0\.0\.1:\d+)$", x)))
        port = int(bootstrap.rsplit(":", 1)[1])

        old = broker_pid(up)
        os.kill(old, signal.SIGKILL)
        assert up.wait_for("local broker restarted on " + bootstrap, timeout=30), up.tail()
        assert any("exited with code -9" in x for x in up.stderr), up.tail()
        new = broker_pid(up)
        assert new != old and listeners(port)
        from memtrail.core.kafka import check_reachable
        from memtrail.core.settings import KafkaSettings

        check_reachable(KafkaSettings(bootstrap=bootstrap), timeout=10)
        time.sleep(3)
        assert up.proc.poll() is None, up.tail()
    finally:
        code = up.stop()
    assert code in (0, 3), up.tail()  # 3: a child named with its exit code (the worker's own recovery)
    assert not any("Traceback" in x for x in up.stderr if not x.startswith("["))


@pytest.mark.ebpf
def test_a_broker_that_stays_dead_stops_up_and_the_spool_is_kept() -> None:
    if os.geteuid() != 0:
        pytest.skip("the sensor needs root")
    up = UpProc("--broker-restarts", "0", "--no-shim", *port_args())
    spool: Path | None = None
    # Work for the sensor while the broker is gone: execs it must report, and cannot deliver.
    load = subprocess.Popen(["sh", "-c", "while :; do /bin/true; done"])
    try:
        assert up.wait_for("memtrail up: ready", timeout=180), up.tail()
        time.sleep(2)
        os.kill(broker_pid(up), signal.SIGKILL)
        code = up.proc.wait(90)
        err = "\n".join(up.stderr)
        assert code == 4, up.tail()
        assert "memtrail up: error: the local broker (Tansu, pid" in err and "exited with code -9" in err
        assert "no restart allowed (--broker-restarts 0): stopping everything" in err
        kept = re.search(r"the sensor spool (\S+) holds (\d+) undelivered batches", err)
        assert kept, up.tail()
        spool = Path(kept.group(1))
        assert int(kept.group(2)) > 0 and spool.is_dir() and list(spool.glob("seg-*.spool")), up.tail()
        assert f"MEMTRAIL_SENSOR_SPOOL_DIR={spool}" in err
        # up's own report is clean (the worker's client logs are its own business)
        assert not any("Traceback" in x for x in up.stderr if not x.startswith("["))
    finally:
        load.kill()
        load.wait()
        up.stop()
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
