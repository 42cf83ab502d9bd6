"""Real eBPF: the kernel-fact patterns of the 40-46 library files fire on what the sensor
really emits when an attacker does the thing, and stay quiet on the benign twin.

Each trigger is a shell script written the way an intruder would run it (a symlink in a
PATH directory, `exec -a sshd`, a setuid copy run by nobody, a bind mount over
/proc/<pid>, a library dlopen'ed from /var/tmp, renames to .locked); the events of that
script's process tree go through the whole shipped library."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf


def run_tree(collector: Collector, script: str) -> list[dict[str, Any]]:
    """Run ``bash -c script``; the events of that bash and its descendants."""
    p = subprocess.Popen(["bash", "-c", script])
    assert p.wait(timeout=60) == 0, script
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == p.pid)
    time.sleep(0.3)
    collector.program.poll()

    def mine(e: dict[str, Any]) -> bool:
        proc = e["process"]
        return proc["pid"] == p.pid or any(a.get("pid") == p.pid for a in proc.get("ancestors") or ())

    return sorted((e for e in collector.events if mine(e)), key=lambda e: e["ts_ns"])


def alerts(events: list[dict[str, Any]]) -> set[str]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id for a in engine.process_batch(events) + engine.flush()}


@pytest.fixture
def scratch() -> Iterator[Path]:
    d = Path(f"/var/tmp/mt-newdet-{os.getpid()}")
    d.mkdir(mode=0o755, exist_ok=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_system_command_path_resolving_to_scratch(collector: Collector, scratch: Path) -> None:
    link = Path(f"/usr/local/bin/mt-newdet-kubectl-{os.getpid()}")
    try:
        ev = run_tree(collector, f"cp /bin/true {scratch}/k && ln -sf {scratch}/k {link} && {link}")
        assert "MT-KFACT-PATH-MASQ-001" in alerts(ev)
    finally:
        link.unlink(missing_ok=True)
    benign = run_tree(collector, "/usr/bin/true")
    assert "MT-KFACT-PATH-MASQ-001" not in alerts(benign)


def test_argv0_daemon_name_outside_system_dirs(collector: Collector, scratch: Path) -> None:
    ev = run_tree(collector, f"cp /bin/sleep {scratch}/upd && (exec -a 'sshd: root@notty' {scratch}/upd 0.1)")
    assert "MT-KFACT-ARGV0-DAEMON-001" in alerts(ev)
    benign = run_tree(collector, "(exec -a 'sshd: root@notty' /bin/sleep 0.1)")
    assert "MT-KFACT-ARGV0-DAEMON-001" not in alerts(benign)


def test_root_setuid_copy_run_by_nobody(collector: Collector, scratch: Path) -> None:
    ev = run_tree(
        collector,
        f"cp /bin/true {scratch}/fontd && chmod 4755 {scratch}/fontd && "
        f"setpriv --reuid=65534 --regid=65534 --clear-groups {scratch}/fontd",
    )
    execs = [e for e in ev if e["syscall"] == "execve" and e["args"].get("exe_path") == f"{scratch}/fontd"]
    assert execs and execs[0]["args"]["exe_file"]["setuid"] is True and execs[0]["process"]["uid"] == 65534
    assert "MT-KFACT-SETUID-UNPACKAGED-001" in alerts(ev)


def test_root_runs_world_writable_program(collector: Collector, scratch: Path) -> None:
    ev = run_tree(
        collector, f"cp /bin/true {scratch}/run.sh && chmod 777 {scratch}/run.sh && {scratch}/run.sh"
    )
    assert "MT-KFACT-WORLD-WRITABLE-EXEC-001" in alerts(ev)
    benign = run_tree(collector, f"cp /bin/true {scratch}/run2 && chmod 755 {scratch}/run2 && {scratch}/run2")
    assert "MT-KFACT-WORLD-WRITABLE-EXEC-001" not in alerts(benign)


def test_bind_mount_over_proc_pid_and_a_binary(collector: Collector, scratch: Path) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    binary = Path(f"/usr/local/bin/mt-newdet-bin-{os.getpid()}")
    try:
        shutil.copy("/bin/true", binary)
        ev = run_tree(
            collector,
            f"mkdir -p {scratch}/empty && mount --bind {scratch}/empty /proc/{victim.pid} && "
            f"umount /proc/{victim.pid} && cp /bin/false {scratch}/evil && "
            f"mount --bind {scratch}/evil {binary} && umount {binary}",
        )
        got = alerts(ev)
        assert "MT-KFACT-MOUNT-OVER-PID-001" in got
        assert "MT-KFACT-BIND-OVER-BINARY-001" in got
    finally:
        subprocess.run(["umount", f"/proc/{victim.pid}"], capture_output=True)
        subprocess.run(["umount", str(binary)], capture_output=True)
        binary.unlink(missing_ok=True)
        victim.kill()
        victim.wait()


def test_user_and_net_namespace_from_unpackaged_copy(collector: Collector, scratch: Path) -> None:
    ev = run_tree(collector, f"cp /usr/bin/unshare {scratch}/u && {scratch}/u -U -n /bin/true")
    assert "MT-KFACT-USERNS-NETNS-001" in alerts(ev)
    benign = run_tree(collector, "/usr/bin/unshare -U -n /bin/true")
    assert "MT-KFACT-USERNS-NETNS-001" not in alerts(benign)


def test_library_dlopened_from_var_tmp(collector: Collector, scratch: Path) -> None:
    lib = next(
        p
        for p in (Path("/lib/x86_64-linux-gnu/libm.so.6"), Path("/usr/lib/x86_64-linux-gnu/libm.so.6"))
        if p.exists()
    )
    (scratch / ".h").mkdir()
    ev = run_tree(
        collector,
        f"cp {lib} {scratch}/libhook.so && cp {lib} {scratch}/.h/libsec.so && "
        f'python3 -c \'import ctypes; ctypes.CDLL("{scratch}/libhook.so"); ctypes.CDLL("{scratch}/.h/libsec.so")\'',
    )
    got = alerts(ev)
    assert "MT-KFACT-TEMP-LIBRARY-001" in got
    assert "MT-KFACT-HIDDEN-LIBRARY-001" in got


def test_interpreter_scripts_from_shm_and_fd(collector: Collector) -> None:
    shm = Path(f"/dev/shm/mt-newdet-{os.getpid()}.sh")
    try:
        ev = run_tree(collector, f"echo true > {shm} && sh {shm} && bash <(echo true)")
        got = alerts(ev)
        assert "MT-EXECX-SCRIPT-FROM-SHM-001" in got
        assert "MT-EXECX-SCRIPT-FROM-FD-001" in got
    finally:
        shm.unlink(missing_ok=True)


def test_document_named_executable(collector: Collector, scratch: Path) -> None:
    ev = run_tree(collector, f"cp /bin/true {scratch}/avatar.png && {scratch}/avatar.png")
    assert "MT-EVADEX-DOCUMENT-EXEC-001" in alerts(ev)


def test_bulk_rename_to_ransom_extension(collector: Collector) -> None:
    d = Path(f"/tmp/mt-newdet-r-{os.getpid()}")
    d.mkdir()
    try:
        for i in range(12):
            (d / f"r{i}.csv").write_text("x")
        ev = run_tree(collector, f'for f in {d}/*.csv; do mv "$f" "$f.locked"; done')
        # each mv is its own process: no single process renamed ten files
        assert "MT-IMPACTX-RANSOM-RENAME-001" not in alerts(ev)
        for i in range(12):
            (d / f"s{i}.csv").write_text("x")
        ev = run_tree(
            collector,
            f'python3 -c \'import glob,os; [os.rename(f, f + ".locked") for f in glob.glob("{d}/s*.csv")]\'',
        )
        assert "MT-IMPACTX-RANSOM-RENAME-001" in alerts(ev)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_mass_unlink_under_etc(collector: Collector) -> None:
    d = Path(f"/etc/mt-newdet-{os.getpid()}")
    d.mkdir()
    try:
        for i in range(110):
            (d / f"f{i}.conf").write_text("x")
        ev = run_tree(
            collector, f"python3 -c 'import glob,os; [os.unlink(f) for f in glob.glob(\"{d}/*.conf\")]'"
        )
        assert "MT-IMPACTX-MASS-UNLINK-001" in alerts(ev)
    finally:
        shutil.rmtree(d, ignore_errors=True)
