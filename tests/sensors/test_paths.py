"""Real eBPF: paths resolved in the kernel, whatever spelling the caller used.

Each trigger is c/paths.c run as an attacker would write it (relative to a chdir,
dirfd-relative, re-spelled with "//" and ".", through a symlink); the test asserts the
kernel-resolved ``args.path`` and the typed text kept beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sensors.cbuild import build
from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf


def run_c(collector: Collector, *argv: str, ok: bool = True) -> tuple[int, list[dict[str, Any]]]:
    """Run the paths trigger; its pid and the events of that pid."""
    p = subprocess.Popen([str(build("paths")), *argv])
    assert p.wait(timeout=30) == 0 or not ok, argv
    pid = p.pid
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == pid)
    collector.program.poll()
    return pid, [e for e in collector.events if e["process"]["pid"] == pid]


def opens(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["syscall"] in ("open", "openat", "openat2")]


def the_open(events: list[dict[str, Any]], path: str) -> dict[str, Any]:
    found = [e for e in opens(events) if e["args"]["path"] == path]
    assert found, (
        f"no open of {path} among {[(e['args']['path'], e['args']['path_typed']) for e in opens(events)]}"
    )
    return found[0]


@pytest.fixture
def target() -> Iterator[int]:
    """A process to aim /proc/<pid>/mem opens at."""
    p = subprocess.Popen(["sleep", "60"])
    yield p.pid
    p.kill()
    p.wait()


@pytest.fixture
def shm_exe() -> Iterator[Path]:
    """A copy of /bin/true dropped in /dev/shm (tmpfs), as a stager would."""
    dst = Path(f"/dev/shm/mt-paths-{os.getpid()}")
    shutil.copy("/bin/true", dst)
    dst.chmod(0o755)
    yield dst
    dst.unlink(missing_ok=True)


def test_plain_absolute_open(collector: Collector) -> None:
    _, ev = run_c(collector, "open", "/etc/shadow")
    e = the_open(ev, "/etc/shadow")
    assert e["args"]["path_typed"] == "/etc/shadow" and e["args"]["path_truncated"] is False


def test_relative_open_after_chdir(collector: Collector) -> None:
    """chdir("/etc"); open("shadow"): a relative open no prefix check on the text can see."""
    _, ev = run_c(collector, "chdir-open", "/etc", "shadow")
    e = the_open(ev, "/etc/shadow")
    assert e["args"]["path_typed"] == "shadow" and e["ret"] >= 0


def test_respelled_open(collector: Collector) -> None:
    _, ev = run_c(collector, "open", "//etc/./shadow")
    assert the_open(ev, "/etc/shadow")["args"]["path_typed"] == "//etc/./shadow"
    _, ev = run_c(collector, "chdir-open", "/usr", "../etc/shadow")
    assert the_open(ev, "/etc/shadow")["args"]["path_typed"] == "../etc/shadow"


def test_open_through_a_symlink_outside_the_watched_prefixes(collector: Collector) -> None:
    d = Path(f"/var/cache/memtrail-paths-{os.getpid()}")
    d.mkdir(exist_ok=True)
    try:
        (d / "pw").symlink_to("/etc/shadow")
        _, ev = run_c(collector, "open", str(d / "pw"))
        assert the_open(ev, "/etc/shadow")["args"]["path_typed"] == str(d / "pw")
    finally:
        shutil.rmtree(d)


def test_unwatched_opens_stay_filtered(collector: Collector) -> None:
    _, ev = run_c(collector, "chdir-open", "/usr/lib", "os-release")
    assert not [e for e in opens(ev) if e["args"]["path"].startswith("/usr/")]


@pytest.mark.parametrize("mode", ["proc-mem-dirfd", "proc-mem-slashes", "proc-mem-task"])
def test_proc_mem_spellings(collector: Collector, target: int, mode: str) -> None:
    _, ev = run_c(collector, mode, str(target))
    want = f"/proc/{target}/task/{target}/mem" if mode == "proc-mem-task" else f"/proc/{target}/mem"
    e = the_open(ev, want)
    assert "O_RDWR" in e["args"]["flags"] and e["ret"] >= 0
    if mode == "proc-mem-dirfd":
        assert e["args"]["path_typed"] == "mem" and e["args"]["dirfd"] >= 0


def execs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["syscall"] in ("execve", "execveat") and e["ret"] == 0]


def test_exec_paths(collector: Collector, shm_exe: Path, tmp_path: Path) -> None:
    """The executed file's path from mm->exe_file, for every spelling of /dev/shm/x."""
    spellings = [
        ("chdir-exec", "/dev/shm", f"./{shm_exe.name}"),
        ("exec", f"//dev/./shm//{shm_exe.name}"),
    ]
    link = tmp_path / "innocent"
    link.symlink_to(shm_exe)
    spellings.append(("exec", str(link)))
    for argv in spellings:
        _, ev = run_c(collector, *argv)
        x = [e for e in execs(ev) if e["args"]["filename"] != str(build("paths"))]
        assert x, argv
        assert x[0]["args"]["exe_path"] == str(shm_exe), (argv, x[0]["args"])
        assert x[0]["args"]["exe_path_truncated"] is False


def test_exec_mmap_path(collector: Collector, shm_exe: Path) -> None:
    _, ev = run_c(collector, "mmap-exec", str(shm_exe))
    m = [e for e in ev if e["syscall"] == "mmap" and e["args"].get("path") == str(shm_exe)]
    assert m and "PROT_EXEC" in m[0]["args"]["prot"] and m[0]["args"]["path_truncated"] is False


def test_relative_unlink_rename_chmod(collector: Collector) -> None:
    d = Path(f"/dev/shm/memtrail-paths-{os.getpid()}")
    d.mkdir()
    try:
        (d / "a").write_text("x")
        _, ev = run_c(collector, "chdir-chmod", str(d), "a")
        c = [e for e in ev if e["syscall"] == "chmod"]
        assert c and c[0]["args"]["path"] == f"{d}/a" and c[0]["args"]["path_typed"] == "a"
        _, ev = run_c(collector, "chdir-rename", str(d), "a", "./b")
        r = [e for e in ev if e["syscall"] == "rename"]
        assert r and (r[0]["args"]["oldpath"], r[0]["args"]["newpath"]) == (f"{d}/a", f"{d}/b")
        _, ev = run_c(collector, "chdir-unlink", str(d), "b")
        u = [e for e in ev if e["syscall"] == "unlink"]
        assert u and u[0]["args"]["path"] == f"{d}/b" and u[0]["args"]["path_resolved"] is True
    finally:
        shutil.rmtree(d)


def test_walk_deeper_than_the_bound_is_flagged_not_wrong(collector: Collector, tmp_path: Path) -> None:
    """45 nested directories: more than the walk's bound. Truncated, and never a wrong absolute path."""
    _, ev = run_c(collector, "deep-open", str(tmp_path), "45")
    o = [e for e in opens(ev) if e["args"]["path_typed"] == "f"]
    assert o, [(e["args"]["path"], e["args"]["path_typed"]) for e in opens(ev)]
    assert o[0]["args"]["path_truncated"] is True and o[0]["args"]["path"] == "f"


# ---- the alerts: each evasive spelling next to the plain one, through the shipped library ----


def alerts_for(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Pattern id -> ATT&CK technique ids, for the events run through the shipped library."""
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    ordered = sorted(events, key=lambda e: e["ts_ns"])
    return {a.rule.id: set(a.threat.technique.id) for a in engine.process_batch(ordered) + engine.flush()}


@pytest.mark.parametrize(
    "argv",
    [("open", "/etc/shadow"), ("chdir-open", "/etc", "shadow"), ("open", "//etc/./shadow")],
    ids=["plain", "chdir-relative", "respelled"],
)
def test_shadow_read_alerts_whatever_the_spelling(collector: Collector, argv: tuple[str, ...]) -> None:
    _, ev = run_c(collector, *argv)
    alerts = alerts_for(ev)
    assert "T1003.008" in alerts.get("MT-CRED-READ-001", set()), sorted(alerts)


@pytest.mark.parametrize("mode", ["proc-mem-plain", "proc-mem-dirfd", "proc-mem-slashes", "proc-mem-task"])
def test_proc_mem_write_open_alerts_whatever_the_spelling(
    collector: Collector, target: int, mode: str
) -> None:
    if mode == "proc-mem-plain":
        _, ev = run_c(collector, "open-rw", f"/proc/{target}/mem")
    else:
        _, ev = run_c(collector, mode, str(target))
    alerts = alerts_for(ev)
    assert "T1055.009" in alerts.get("MT-INJECT-004", set()), sorted(alerts)


def test_exec_from_dev_shm_alerts_whatever_the_spelling(
    collector: Collector, shm_exe: Path, tmp_path: Path
) -> None:
    link = tmp_path / "innocent"
    link.symlink_to(shm_exe)
    for argv in [
        ("exec", str(shm_exe)),
        ("chdir-exec", "/dev/shm", f"./{shm_exe.name}"),
        ("exec", f"//dev/./shm//{shm_exe.name}"),
        ("exec", str(link)),
    ]:
        _, ev = run_c(collector, *argv)
        alerts = alerts_for(ev)
        assert "T1059.004" in alerts.get("MT-SHM-001", set()), (argv, sorted(alerts))


# ---- file facts of the executed file ----


def test_exec_file_facts(collector: Collector, shm_exe: Path) -> None:
    """fs, dev, inode, link count, owner and mode of the file the kernel executed."""
    shm_exe.chmod(0o4755)
    st = shm_exe.stat()
    _, ev = run_c(collector, "exec", str(shm_exe))
    x = [e for e in execs(ev) if e["args"]["exe_path"] == str(shm_exe)]
    assert x, [e["args"]["exe_path"] for e in execs(ev)]
    f = x[0]["args"]["exe_file"]
    assert f["fs"] == "tmpfs" and f["ino"] == st.st_ino and f["nlink"] == 1 and f["uid"] == st.st_uid
    assert f["dev"] == f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    assert f["mode"] == "0o4755" and f["setuid"] is True and f["setgid"] is False


def test_memfd_exec_file_facts(collector: Collector) -> None:
    _, ev, _ = collector.run("memfd_exec")
    x = [e for e in ev if e["syscall"] == "execve" and e["args"]["exe_memfd"]]
    assert x
    f = x[0]["args"]["exe_file"]
    assert f["fs"] == "tmpfs" and f["nlink"] == 0  # a memfd lives on shmem, with no link
    assert x[0]["args"]["exe_path"] == "memfd:payload"  # a pseudo file: its bare name, no "/"


# ---- executable memory without an exec: code mapped from memory-only files ----


@pytest.fixture(scope="module")
def gated() -> Iterator[Collector]:
    """A sensor whose comm allowlist names the trigger: its noisy events are dropped."""
    c = Collector(allow_comms=["paths"])
    yield c
    c.close()


@pytest.mark.parametrize(
    "mode", ["memfd-mmap-exec", "shm-mmap-exec", "tmpfile-mmap-exec", "deleted-mmap-exec"]
)
def test_exec_mapping_of_memory_only_files_is_always_reported(
    gated: Collector, mode: str, tmp_path: Path
) -> None:
    arg = {
        "memfd-mmap-exec": "",
        "shm-mmap-exec": f"/mt-paths-{os.getpid()}",
        "tmpfile-mmap-exec": "/dev/shm",
        "deleted-mmap-exec": str(tmp_path / "stage"),
    }[mode]
    _, ev = run_c(gated, mode, arg)
    maps = [e for e in ev if e["syscall"] == "mmap" and e["args"].get("path") is not None]
    # the ordinary library mappings of the trigger's own start-up went through the allowlist
    assert not [m for m in maps if m["args"]["path"].startswith("/usr/lib/")], maps
    assert len(maps) == 1, maps
    a = maps[0]["args"]
    assert a["prot"] == ["PROT_READ", "PROT_EXEC"]
    if mode == "memfd-mmap-exec":
        assert a["file_shmem"] and a["file_nlink0"] and a["path"] == "memfd:jit"
    elif mode == "shm-mmap-exec":
        assert a["file_shmem"] and not a["file_nlink0"] and a["path"] == f"/dev/shm{arg}"
    elif mode == "tmpfile-mmap-exec":
        assert a["file_shmem"] and a["file_nlink0"]
    else:
        assert a["file_nlink0"] and not a["file_shmem"]
    alerts = alerts_for(ev)
    assert "T1620" in alerts.get("MT-FILELESS-004", set()), sorted(alerts)


def test_loader_exec_of_a_dev_shm_program(collector: Collector, shm_exe: Path) -> None:
    """``ld-linux.so /dev/shm/x``: the kernel execs the loader; the loader then maps the
    program's code from its file, and that mapping carries the program's resolved path and
    its tmpfs fact (the alert comes from the mapping, not from the exec)."""
    loader = "/lib64/ld-linux-x86-64.so.2"
    if not Path(loader).exists():
        pytest.skip("no x86-64 dynamic loader")
    p = subprocess.Popen([loader, str(shm_exe)])
    assert p.wait(timeout=30) == 0
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == p.pid)
    collector.program.poll()
    ev = [e for e in collector.events if e["process"]["pid"] == p.pid]
    x = execs(ev)
    assert x and x[0]["args"]["exe_path"].startswith("/usr/lib/x86_64-linux-gnu/ld-linux"), x
    maps = [e for e in ev if e["syscall"] == "mmap" and e["args"].get("path") == str(shm_exe)]
    assert maps and maps[0]["args"]["file_shmem"] is True
    assert "T1620" in alerts_for(ev).get("MT-FILELESS-004", set())


def test_stdio_inode_numbers(collector: Collector) -> None:
    """Each stdio fd's inode: for a pipe, the N of pipe:[N] (what joins the two pipe ends)."""
    r, w = os.pipe()
    try:
        want = int(os.readlink(f"/proc/self/fd/{r}").removeprefix("pipe:[").rstrip("]"))
        p = subprocess.Popen(["/bin/cat"], stdin=r, stdout=subprocess.DEVNULL)
        os.close(w)
        assert p.wait(timeout=10) == 0
    finally:
        os.close(r)
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == p.pid)
    x = [e for e in execs(collector.events) if e["process"]["pid"] == p.pid]
    assert x and x[0]["args"]["stdio"]["stdin"] == "pipe"
    assert x[0]["args"]["stdio"]["stdin_ino"] == want
