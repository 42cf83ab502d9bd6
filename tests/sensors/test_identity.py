"""Real eBPF: process entity ids (unique across processes, stable across exec)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sensors.conftest import Collector
from tests.sensors.rootfs import RUN
from tests.sensors.test_stdio_peers import polling

pytestmark = pytest.mark.ebpf


def _stat_ticks(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def test_entity_ids_differ_per_process_and_survive_exec(collector: Collector) -> None:
    # sh forks two children that exec /bin/true; sh itself then execs /bin/echo
    p = subprocess.Popen(
        ["/bin/sh", "-c", "/bin/true ident-a; /bin/true ident-b; exec /bin/echo ident-c"],
        stdout=subprocess.DEVNULL,
    )
    assert p.wait() == 0
    sh = p.pid
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == sh)
    collector.program.poll()
    execs = {
        tuple(e["args"]["argv"]): e
        for e in collector.events
        if e["syscall"] == "execve"
        and e["args"].get("argv", [""])[-1:] in (["ident-a"], ["ident-b"], ["ident-c"])
    }
    a, b, c = (
        execs[("/bin/true", "ident-a")],
        execs[("/bin/true", "ident-b")],
        execs[("/bin/echo", "ident-c")],
    )
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
    ids = {x["process"]["entity_id"] for x in (a, b, c)}
    assert len(ids) == 3 and all(i.startswith(boot + "-") for i in ids)
    # the exec'ing shell keeps its identity: its own exec, fork and exit events share it
    mine = [e for e in collector.events if e["process"]["pid"] == sh]
    assert {e["process"]["entity_id"] for e in mine} == {c["process"]["entity_id"]}
    assert c["process"]["entity_id"] == f"{boot}-{sh}-{c['process']['start_boottime_ns'] // 10_000_000}"
    # children name the shell as their parent, by entity
    assert a["process"]["ancestors"][0]["entity_id"] == c["process"]["entity_id"]
    # and the pytest process (known from the /proc scan) has the id /proc gives it
    me = [x["entity_id"] for x in a["process"]["ancestors"] if x["pid"] == os.getpid()]
    assert me == [f"{boot}-{os.getpid()}-{_stat_ticks(os.getpid())}"]


# ---- injection targets: attacker-shaped C triggers, built by the test -----------------

INJECT_C = r"""
#define _GNU_SOURCE
#include <elf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

/* Hijack a running process by its registers only: attach, read the registers, write
   them back (an attacker would point rip at code already mapped there), detach.
   argv: MODE PID, MODE = setregs | setregset | pvw (process_vm_writev) | child (debug own child). */
static unsigned long stack_low(pid_t pid) {
    char path[64], line[512];
    unsigned long lo = 0, hi;
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "[stack]")) { sscanf(line, "%lx-%lx", &lo, &hi); break; }
    fclose(f);
    return lo;
}

static int regs_only(pid_t pid, int regset) {
    struct user_regs_struct regs;
    if (ptrace(PTRACE_ATTACH, pid, 0, 0) != 0) { perror("attach"); return 1; }
    waitpid(pid, 0, 0);
    struct iovec iov = {&regs, sizeof regs};
    if (regset) {
        ptrace(PTRACE_GETREGSET, pid, (void *)NT_PRSTATUS, &iov);
        if (ptrace(PTRACE_SETREGSET, pid, (void *)NT_PRSTATUS, &iov) != 0) { perror("setregset"); return 1; }
    } else {
        ptrace(PTRACE_GETREGS, pid, 0, &regs);
        if (ptrace(PTRACE_SETREGS, pid, 0, &regs) != 0) { perror("setregs"); return 1; }
    }
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "child")) {           /* a debugger running its own program */
        pid_t c = fork();
        if (c == 0) {
            ptrace(PTRACE_TRACEME, 0, 0, 0);
            raise(SIGSTOP);
            usleep(1500000);  /* the program being debugged runs a while */
            _exit(0);
        }
        waitpid(c, 0, 0);
        struct user_regs_struct regs;
        ptrace(PTRACE_GETREGS, c, 0, &regs);
        long word = ptrace(PTRACE_PEEKDATA, c, (void *)regs.rsp, 0);
        ptrace(PTRACE_POKEDATA, c, (void *)regs.rsp, (void *)word);
        ptrace(PTRACE_SETREGS, c, 0, &regs);
        ptrace(PTRACE_CONT, c, 0, 0);
        waitpid(c, 0, 0);
        printf("ok %d\n", c);
        return 0;
    }
    pid_t pid = atoi(argv[2]);
    if (!strcmp(argv[1], "setregs")) return regs_only(pid, 0);
    if (!strcmp(argv[1], "setregset")) return regs_only(pid, 1);
    if (!strcmp(argv[1], "pvw")) {
        unsigned long at = stack_low(pid);
        char buf[16] = "memtrail-pvw";
        struct iovec l = {buf, sizeof buf}, r = {(void *)at, sizeof buf};
        ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);
        if (n != sizeof buf) { perror("process_vm_writev"); return 1; }
        return 0;
    }
    return 2;
}
"""


@pytest.fixture(scope="module")
def injector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    d = tmp_path_factory.mktemp("inj")
    (d / "inj.c").write_text(INJECT_C)
    subprocess.run(["gcc", "-O1", "-o", str(d / "inj"), str(d / "inj.c")], check=True)
    return d / "inj"


def _as(binary: Path, name: str) -> Path:
    """The injector copied to a temp dir under an innocent (or debugger's) name."""
    d = Path(tempfile.mkdtemp(prefix="mt-inj-", dir="/tmp"))
    dst = d / name
    shutil.copy2(binary, dst)
    return dst


def _engine() -> Any:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.assemble import build_engine

    return build_engine([DEFAULT_PATTERNS_DIR], [])


def _run_against_sibling(collector: Collector, binary: Path, mode: str) -> tuple[int, list[dict[str, Any]]]:
    victim = subprocess.Popen(["/bin/sleep", "30"])
    try:
        time.sleep(0.1)
        p = subprocess.run([str(binary), mode, str(victim.pid)], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        ours = lambda e: e["process"].get("exe") == str(binary)  # noqa: E731
        assert collector.wait_for(lambda e: e["syscall"] == "process_exit" and ours(e), timeout=20)
        collector.program.poll()
        pid = [e for e in collector.events if ours(e)][-1]["process"]["pid"]
        return victim.pid, [e for e in collector.events if e["process"]["pid"] == pid]
    finally:
        victim.kill()
        victim.wait()
        shutil.rmtree(binary.parent)


@pytest.mark.parametrize(
    ("mode", "request_name"), [("setregs", "PTRACE_SETREGS"), ("setregset", "PTRACE_SETREGSET")]
)
def test_register_only_injection_by_a_binary_named_gdb(
    collector: Collector, injector: Path, mode: str, request_name: str
) -> None:
    gdb = _as(injector, "gdb")
    victim, mine = _run_against_sibling(collector, gdb, mode)
    sets = [e for e in mine if e["syscall"] == "ptrace" and e["args"]["request"] == request_name]
    assert sets, [(e["syscall"], e["args"]) for e in mine]
    t = sets[0]["args"]["target"]
    assert t["pid"] == victim and t["exe"] in ("/bin/sleep", "/usr/bin/sleep") and t["comm"] == "sleep"
    assert t["is_descendant"] is False and t["same_container"] is True
    assert t["entity_id"].split("-")[1] == str(victim)
    assert not any(e["args"]["request"].startswith("PTRACE_POKE") for e in mine if e["syscall"] == "ptrace")
    alerts = _engine().process_batch(sorted(mine, key=lambda e: e["ts_ns"]))
    got = {a.rule.id: a for a in alerts}
    assert "MT-INJECT-005" in got and "MT-INJECT-002" in got, sorted(got)
    assert "T1055.008" in got["MT-INJECT-005"].threat.technique.id
    assert got["MT-INJECT-005"].process.entity_id == sets[0]["process"]["entity_id"]


def test_process_vm_writev_by_a_binary_named_java(collector: Collector, injector: Path) -> None:
    java = _as(injector, "java")
    victim, mine = _run_against_sibling(collector, java, "pvw")
    w = [e for e in mine if e["syscall"] == "process_vm_writev"]
    assert w and w[0]["ret"] == 16
    t = w[0]["args"]["target"]
    assert t["pid"] == victim and t["is_descendant"] is False and t["comm"] == "sleep"
    alerts = _engine().process_batch(sorted(mine, key=lambda e: e["ts_ns"]))
    hit = [a for a in alerts if a.rule.id == "MT-INJECT-003"]
    assert hit and "T1055" in hit[0].threat.technique.id


def test_debugger_tracing_its_own_child_stays_quiet(collector: Collector, injector: Path) -> None:
    # installed like a debugger (not run from a temp dir, which is a finding of its own)
    d = Path(tempfile.mkdtemp(prefix="memtrail-test-", dir="/opt"))
    gdb = d / "gdb"
    shutil.copy2(injector, gdb)
    try:
        p = subprocess.run([str(gdb), "child"], capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(d)
    assert p.returncode == 0 and p.stdout.startswith("ok "), p.stderr
    child = int(p.stdout.split()[1])
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == child)
    collector.program.poll()
    writes = [
        e
        for e in collector.events
        if e["syscall"] == "ptrace"
        and e["args"]["target_pid"] == child
        and e["args"]["request"] == "PTRACE_POKEDATA"
    ]
    assert writes and writes[0]["args"]["target"]["is_descendant"] is True
    tracer = writes[0]["process"]["pid"]
    tree = [e for e in collector.events if e["process"]["pid"] in (tracer, child)]
    alerts = _engine().process_batch(sorted(tree, key=lambda e: e["ts_ns"]))
    loud = [
        (a.rule.id, a.rule.severity) for a in alerts if a.rule.severity in ("warning", "error", "critical")
    ]
    assert loud == []


@pytest.mark.podman
@pytest.mark.slow
def test_injection_inside_a_container_resolves_the_namespaced_target(
    collector: Collector,
    tmp_path: Path,
    image: str,
) -> None:
    """A tracer in a container names its target by the container's pid: the sensor maps it
    to the host process, same container, not a descendant; a debugger's own child is."""
    if not shutil.which("podman"):
        pytest.skip("podman not installed")
    d = tmp_path / "bin"
    d.mkdir()
    (d / "inj.c").write_text(INJECT_C)
    subprocess.run(["gcc", "-O1", "-static", "-o", str(d / "gdb"), str(d / "inj.c")], check=True)
    script = "sleep 30 & v=$!; sleep 0.2; /x/gdb setregs $v; r=$?; /x/gdb child; sleep 2; kill $v; exit $r"
    with_peers = [*RUN, "-v", f"{d}:/x:ro", image, "/bin/sh", "-c", script]
    with polling(collector):  # read events as they come, as the sensor daemon does
        p = subprocess.run(with_peers, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr + p.stdout
    ours = lambda e: e["process"].get("exe") == "/x/gdb"  # noqa: E731
    assert collector.wait_for(lambda e: ours(e) and e["syscall"] == "process_exit", timeout=20)
    collector.program.poll()
    sets = [e for e in collector.events if ours(e) and e["args"].get("request") == "PTRACE_SETREGS"]
    assert sets and sets[0]["container_id"]
    t = sets[0]["args"]["target"]
    # the victim is the shell's first child (busybox runs `sleep` without an exec): a sibling
    tracer = sets[0]["process"]
    forks = [
        e["args"]["child_pid"]
        for e in collector.events
        if e["syscall"] == "process_fork" and e["process"]["pid"] == tracer["ppid"]
    ]
    assert forks and t["pid"] == forks[0], (t, forks)
    assert t["ns_pid"] == sets[0]["args"]["target_pid"] != t["pid"]
    assert t["same_container"] is True and t["container_id"] == sets[0]["container_id"]
    assert t["is_descendant"] is False and t["entity_id"].split("-")[1] == str(t["pid"])
    pokes = [e for e in collector.events if ours(e) and e["args"].get("request") == "PTRACE_POKEDATA"]
    assert pokes and pokes[0]["args"]["target"]["is_descendant"] is True


@pytest.mark.skipif(not shutil.which("gdb"), reason="gdb not installed")
def test_real_gdb_own_program_and_host_attach_quiet_a_copied_gdb_alerts(
    collector: Collector, tmp_path: Path
) -> None:
    """The real debugger: `gdb --args prog` (its own child) and the packaged /usr/bin/gdb's
    `gdb -p PID` on the host raise nothing at warning+ (a developer's debugging); the same gdb
    copied elsewhere attaching to a process it did not start is an injection-capable attach."""
    copied = tmp_path / "gdb"
    shutil.copy(shutil.which("gdb") or "/usr/bin/gdb", copied)
    runs = {}
    with polling(collector):
        runs["own"] = subprocess.run(
            ["gdb", "-nx", "-batch", "-ex", "break exit", "-ex", "run", "-ex", "kill", "--args", "/bin/true"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        for name, exe in (("host-attach", "/usr/bin/gdb"), ("copied-attach", str(copied))):
            victim = subprocess.Popen(["/bin/sleep", "30"])
            try:
                time.sleep(0.2)
                runs[name] = subprocess.run(
                    [exe, "-nx", "-batch", "-p", str(victim.pid), "-ex", "detach"],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            finally:
                victim.kill()
                victim.wait()
        time.sleep(0.5)
    assert all(r.returncode == 0 for r in runs.values()), {k: r.stderr for k, r in runs.items()}
    by_entity: dict[str, list[dict[str, Any]]] = {}
    for e in collector.events:
        by_entity.setdefault(e["process"]["entity_id"], []).append(e)
    results: dict[str, list[tuple[str, str]]] = {}
    for evs in by_entity.values():
        execs = [e for e in evs if e["syscall"] == "execve" and e["ret"] == 0]
        if not execs or not execs[0]["args"]["argv"] or Path(execs[0]["args"]["argv"][0]).name != "gdb":
            continue
        argv = execs[0]["args"]["argv"]
        kind = "own" if "-p" not in argv else "copied-attach" if argv[0] == str(copied) else "host-attach"
        alerts = _engine().process_batch(sorted(evs, key=lambda e: e["ts_ns"]))
        results[kind] = [(a.rule.id, a.rule.severity) for a in alerts if a.rule.severity != "info"]
    assert set(results) == {"own", "host-attach", "copied-attach"}, results
    assert results["own"] == [] and results["host-attach"] == [], results
    assert "MT-INJECT-002" in {r for r, _ in results["copied-attach"]}, results["copied-attach"]
