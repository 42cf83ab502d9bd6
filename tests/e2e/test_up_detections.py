"""End to end through ``memtrail up`` on the real kernel: each core detection → an alert in the JSONL.

``memtrail up`` runs as a real subprocess with its own local broker, the eBPF sensor, the
Faust worker, the shim (when installed) and the local sinks; the triggers are real syscalls on this host
(tests/e2e/triggers.py), and the assertions read ``--alerts-jsonl``.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import ARTIFACTS, REPO, UpProc, port_args, read_jsonl

pytestmark = [pytest.mark.ebpf, pytest.mark.broker, pytest.mark.slow]

if importlib.util.find_spec("memtrail.commands.sensor") is None and os.environ.get("CI") != "true":
    pytest.skip(
        "the sensor command (memtrail/commands/sensor.py) is not in the tree yet", allow_module_level=True
    )

# trigger → (technique ids that must all be in the alert, sub-technique parents included)
CASES: dict[str, set[str]] = {
    "memfd": {"T1620"},
    "dev_shm": {"T1059.004", "T1059"},
    "ptrace": {"T1055.008", "T1055"},
    "setregs": {"T1055.008", "T1055"},
    "curl_sh": {"T1105", "T1059.004"},
    "pipe_relay": {"T1095", "T1059.004"},
    "vm_writev": {"T1055"},
    "proc_mem": {"T1055.009", "T1055"},
    "mmap_wx": {"T1620", "T1055"},
    "mprotect_wx": {"T1620", "T1055"},
    "ld_preload": {"T1574.006", "T1574"},
    # loader facts (environment scanned by bytes, the loader run as a program)
    "ld_preload_deep": {"T1574.006", "T1574"},
    "ld_audit": {"T1574.006", "T1574"},
    "glibc_tunables": {"T1068"},
    "ldso_shm": {"T1218"},
    "ldso_preload": {"T1574.006", "T1574"},
}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProc, Path]]:
    jsonl = tmp_path_factory.mktemp("up") / "alerts.jsonl"
    proc = UpProc("--alerts-jsonl", str(jsonl), *port_args())
    try:
        if not proc.wait_for("memtrail up: ready", timeout=240):
            pytest.fail(f"memtrail up not ready:\n{proc.tail()}")
        yield proc, jsonl
    finally:
        code = proc.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "e2e-up.stderr.log").write_text("\n".join(proc.stderr))
        for leftover in glob.glob("/tmp/mt-e2e-preload-*.so"):
            os.unlink(leftover)
        assert code == 0, f"memtrail up exited {code} on SIGINT:\n{proc.tail()}"


def _involves(alert: dict[str, Any], pid: int) -> bool:
    pids = {alert["process"].get("pid")}
    for ev in alert.get("evidence", []):
        proc = ev.get("process", {})
        pids.update((proc.get("pid"), proc.get("ppid")))
    return pid in pids


def _trigger(name: str) -> int:
    p = subprocess.Popen([sys.executable, "-m", "tests.e2e.triggers", name], cwd=REPO)
    assert p.wait(30) == 0, f"trigger {name} failed"
    return p.pid


@pytest.mark.parametrize("case", list(CASES))
def test_detection_alerts_within_seconds(up: tuple[UpProc, Path], case: str) -> None:
    proc, jsonl = up
    want = CASES[case]
    start = time.monotonic()
    pid = _trigger(case)
    found: list[dict[str, Any]] = []
    while time.monotonic() - start < 20 and not found:
        time.sleep(0.2)
        found = [
            a for a in read_jsonl(jsonl) if want <= set(a["threat"]["technique"]["id"]) and _involves(a, pid)
        ]
    assert found, f"no alert with {sorted(want)} for pid {pid} within 20 s:\n{proc.tail(30)}"
    took = time.monotonic() - start
    alert = found[0]
    # The alert fields every sink relies on.
    assert alert["id"] and alert["@timestamp"]
    assert alert["rule"]["id"].startswith("MT-") and alert["rule"]["name"] and alert["rule"]["severity"]
    assert alert["threat"]["tactic"]["name"], "tactic names missing"
    assert alert["container"]["id"] is None  # on the host
    assert (
        alert["process"]["pid"]
        and alert["process"]["executable"]
        and alert["process"]["command_line"] is not None
    )
    assert alert["host"]["name"]
    assert alert["evidence"] and all("syscall" in e for e in alert["evidence"])
    # The console line is printed too.
    assert any(alert["rule"]["id"] in line for line in proc.stdout)
    print(f"{case}: {alert['rule']['id']} {alert['threat']['technique']['id']} after {took:.2f}s")


def test_memfd_exec_is_one_incident_with_every_pattern(up: tuple[UpProc, Path]) -> None:
    """One memfd exec: exactly one alert line in the JSONL, carrying every matched pattern."""
    proc, jsonl = up
    start = time.monotonic()
    pid = _trigger("memfd")
    mine: list[dict[str, Any]] = []
    while time.monotonic() - start < 20 and not mine:
        time.sleep(0.2)
        mine = [a for a in read_jsonl(jsonl) if _involves(a, pid)]
    assert mine, f"no alert for pid {pid} within 20 s:\n{proc.tail(30)}"
    took = time.monotonic() - start
    time.sleep(4)  # the incident hold (1 s) and flush timer, with margin: nothing more may follow
    mine = [a for a in read_jsonl(jsonl) if _involves(a, pid)]
    assert len(mine) == 1, [(a["id"], [p["id"] for p in a["patterns"]]) for a in mine]
    (alert,) = mine
    ids = [p["id"] for p in alert["patterns"]]
    assert {"MT-FILELESS-001", "MT-FILELESS-002"} <= set(ids), ids
    assert alert["rule"]["id"] == ids[0] and alert["rule"]["severity"] == "critical"
    assert "T1620" in alert["threat"]["technique"]["id"]
    assert {t for p in alert["patterns"] for t in p["techniques"]} == set(alert["threat"]["technique"]["id"])
    assert alert["count"] == 1 and alert["process"]["pid"] == pid
    assert alert["process"]["entity_id"]
    line = next((x for x in proc.stdout if f"pid={pid} " in x), "")
    assert line.startswith(f"CRITICAL {ids[0]}+"), line  # the console lists every pattern id
    print(f"memfd: one alert {ids} {alert['threat']['technique']['id']} after {took:.2f}s")
