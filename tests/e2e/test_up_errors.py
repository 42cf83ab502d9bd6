"""``memtrail up`` failure paths: clear one-line errors and non-zero exits, never a traceback."""

from __future__ import annotations

import signal
import socket
import urllib.request

import pytest

from tests.e2e.helpers import UpProc, port_args

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_unreachable_bootstrap_fails_clearly() -> None:
    up = UpProc("--no-sensor", "--bootstrap", "127.0.0.1:1", *port_args())
    code = up.proc.wait(60)
    up.stop()
    err = "\n".join(up.stderr)
    assert code != 0
    assert "memtrail up: error: Kafka broker 127.0.0.1:1 unreachable" in err
    assert "Traceback" not in err


def test_a_child_that_dies_is_named_with_its_exit_code_and_output() -> None:
    with socket.socket() as busy:  # the worker's metrics port is taken: it must exit
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = UpProc("--no-sensor", "--no-shim", "--worker-metrics-port", str(port))
        code = up.proc.wait(90)
        up.stop()
    err = "\n".join(up.stderr)
    assert code == 3, err
    assert "memtrail up: error: worker exited with code 2; stopping everything" in err
    assert "Address already in use" in err
    assert "Traceback" not in err


def test_unwritable_alerts_jsonl_fails_clearly() -> None:
    up = UpProc("--no-sensor", "--alerts-jsonl", "/proc/memtrail-nope/alerts.jsonl", *port_args())
    code = up.proc.wait(30)
    up.stop()
    err = "\n".join(up.stderr)
    assert code == 2
    assert "memtrail up: error: cannot append alerts to /proc/memtrail-nope/alerts.jsonl" in err
    assert "Traceback" not in err


def test_sigterm_stops_every_child_and_exits_zero() -> None:
    args = port_args()
    metrics_port = args[args.index("--worker-metrics-port") + 1]
    up = UpProc("--no-sensor", "--no-shim", *args)
    try:
        assert up.wait_for("memtrail up: ready", timeout=90), up.tail()
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=2) as r:
            assert r.status == 200
        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(60) == 0, up.tail()
    finally:
        up.stop()
    assert any("SIGTERM received: stopping" in line for line in up.stderr)
    with pytest.raises(OSError):  # the worker is gone with it
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=2)
