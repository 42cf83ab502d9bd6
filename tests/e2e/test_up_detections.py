"""End to end through ``memtrail up`` on the real kernel: each core detection → an alert in the JSONL.

``memtrail up`` runs as a real subprocess with its own local broker, the eBPF sensor, the
Faust worker, the shim (when installed) and the local sinks; the triggers are real syscalls on this host
(tests/e2e/triggers.py), and the assertions read ``--alerts-jsonl``.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
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


def _await_alert(up: tuple[UpProc, Path], want: set[str], pid: int, start: float) -> dict[str, Any]:
    """The first alert in the JSONL with every technique of ``want`` that involves ``pid``,
    waited for until 20 s after ``start``."""
    proc, jsonl = up
    found: list[dict[str, Any]] = []
    while time.monotonic() - start < 20 and not found:
        time.sleep(0.2)
        found = [
            a for a in read_jsonl(jsonl) if want <= set(a["threat"]["technique"]["id"]) and _involves(a, pid)
        ]
    assert found, f"no alert with {sorted(want)} for pid {pid} within 20 s:\n{proc.tail(30)}"
    return found[0]


@pytest.mark.parametrize("case", list(CASES))
def test_detection_alerts_within_seconds(up: tuple[UpProc, Path], case: str) -> None:
    proc, _ = up
    want = CASES[case]
    start = time.monotonic()
    pid = _trigger(case)
    alert = _await_alert(up, want, pid, start)
    took = time.monotonic() - start
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
    # The console line is printed too: stdout is flushed after the batch's JSONL lines are
    # written, so the file can show the alert a moment before the pipe does.
    deadline = time.monotonic() + 5
    while not any(alert["rule"]["id"] in line for line in proc.stdout) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(alert["rule"]["id"] in line for line in proc.stdout), proc.stdout[-20:]
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


# The evasive routes to the same kernel effects (re-spelled, relative, through a symlink or a
# dirfd, another mapping, another namespace handle, a binary renamed like an exempt tool),
# each by a real C trigger (tests/sensors/c, the same programs the sensor tests run) under
# ``memtrail up`` with its default filters. Each trigger runs from a copy with a name of its
# own, so one variant's alert is not grouped into another's (grouping keys on the executable).
EVASIVE: dict[str, tuple[str, tuple[str, ...], set[str]]] = {
    # name: (C program, its arguments, techniques). Placeholders: {shm_name} a copy of /bin/true
    # in /dev/shm, {link} a symlink to it in a temp dir, {target} a running process, {pid} this
    # test's pid, {dir} the temp dir (holding k -> /bin/sh).
    "shadow_chdir_relative": ("paths", ("chdir-open", "/etc", "shadow"), {"T1003.008"}),
    "shadow_respelled": ("paths", ("open", "//etc/./shadow"), {"T1003.008"}),
    "shm_exec_after_cd": ("paths", ("chdir-exec", "/dev/shm", "./{shm_name}"), {"T1059.004"}),
    "shm_exec_respelled": ("paths", ("exec", "//dev/./shm//{shm_name}"), {"T1059.004"}),
    "shm_exec_by_symlink": ("paths", ("exec", "{link}"), {"T1059.004"}),
    "proc_mem_by_dirfd": ("paths", ("proc-mem-dirfd", "{target}"), {"T1055.009"}),
    "proc_mem_slashes": ("paths", ("proc-mem-slashes", "{target}"), {"T1055.009"}),
    "proc_mem_task": ("paths", ("proc-mem-task", "{target}"), {"T1055.009"}),
    "memfd_mapped_exec": ("paths", ("memfd-mmap-exec", ""), {"T1620"}),
    "shm_open_mapped_exec": ("paths", ("shm-mmap-exec", "/mt-e2e-{pid}"), {"T1620"}),
    "wx_interior_subrange": ("wx_region", ("interior",), {"T1620"}),
    "wx_map_fixed_rx_over_rw": ("wx_region", ("fixed",), {"T1620"}),
    "setns_fd_nstype_0": ("ns_escape", ("setns0",), {"T1611"}),
    "setns_pidfd": ("ns_escape", ("pidfd",), {"T1611"}),
    "service_shell_by_symlink": ("exe_spell", ("spawn", "{dir}", "./k", "-c", "exit 0"), {"T1059.004"}),
}


@pytest.mark.parametrize("case", list(EVASIVE))
def test_evasive_variant_alerts(up: tuple[UpProc, Path], case: str, tmp_path: Path) -> None:
    from tests.sensors.cbuild import build

    program, args, want = EVASIVE[case]
    tmp_path.chmod(0o755)
    # the service-shell case: the trigger is the service (a copy named consul) starting ./k -> sh
    exe = tmp_path / ("consul" if program == "exe_spell" else f"{program}-{case}")
    shutil.copy(build(program), exe)
    shm = Path(f"/dev/shm/mt-e2e-{case}-{os.getpid()}")
    shutil.copy("/bin/true", shm)
    shm.chmod(0o755)
    (tmp_path / "innocent").symlink_to(shm)
    (tmp_path / "k").symlink_to("/bin/sh")
    target = subprocess.Popen(["sleep", "60"])
    fields = {
        "shm_name": shm.name,
        "link": str(tmp_path / "innocent"),
        "target": str(target.pid),
        "pid": str(os.getpid()),
        "dir": str(tmp_path),
    }
    try:
        start = time.monotonic()
        p = subprocess.Popen([str(exe), *(a.format(**fields) for a in args)], stdin=subprocess.DEVNULL)
        assert p.wait(30) == 0, f"trigger {case} failed"
        alert = _await_alert(up, want, p.pid, start)
        print(f"{case}: {alert['rule']['id']} after {time.monotonic() - start:.2f}s")
    finally:
        target.kill()
        target.wait()
        shm.unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("name", "trigger", "want"),
    [("gdb", "setregs", {"T1055.008"}), ("node", "vm_writev", {"T1055"}), ("java", "ptrace", {"T1055.008"})],
)
def test_injection_by_a_copy_named_like_an_exempt_tool(
    up: tuple[UpProc, Path], tmp_path: Path, name: str, trigger: str, want: set[str]
) -> None:
    """The injection triggers run by a copy of the Python interpreter in a temp dir named gdb,
    node or java: debuggers and JIT runtimes are exempt only as the packaged programs."""
    tmp_path.chmod(0o755)
    copy = tmp_path / name
    shutil.copy(os.path.realpath(sys.executable), copy)
    start = time.monotonic()
    p = subprocess.Popen([str(copy), "-m", "tests.e2e.triggers", trigger], cwd=REPO)
    assert p.wait(30) == 0, f"trigger {trigger} as {name} failed"
    alert = _await_alert(up, want, p.pid, start)
    assert alert["process"]["executable"] == str(copy)
    print(f"{trigger} as {name}: {alert['rule']['id']} after {time.monotonic() - start:.2f}s")
