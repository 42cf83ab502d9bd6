"""Real eBPF: ``process.exe`` is the file the kernel executed, however the exec spelled it.

The launcher (c/exe_spell.c) runs programs as an attacker would: ``./x`` after a chdir to a
temp dir, a symlink named ``nginx`` to a temp copy of a shell, ``//usr/./bin//dash``, a
renamed copy of a program. The test asserts ``process.exe`` (and ``exe_source``) in the
events, that the /proc route names the same file, and that a pattern exception granted to a
packaged program by name (JIT runtimes under /usr may map W+X memory) is not granted to a
/tmp copy named like it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensors.proctable import read_proc
from tests.sensors.cbuild import build
from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf


def launch(collector: Collector, *argv: str) -> tuple[int, list[dict[str, Any]]]:
    """Run the launcher with ``argv``; its pid and the events of that pid, in order."""
    p = subprocess.Popen([str(build("exe_spell")), *argv])
    assert p.wait(timeout=30) == 0, argv
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == p.pid)
    time.sleep(0.2)
    collector.program.poll()
    mine = [e for e in collector.events if e["process"]["pid"] == p.pid]
    return p.pid, sorted(mine, key=lambda e: e["ts_ns"])


def exec_of(events: list[dict[str, Any]], filename: str) -> dict[str, Any]:
    found = [
        e for e in events if e["syscall"] in ("execve", "execveat") and e["args"]["filename"] == filename
    ]
    assert found, [(e["syscall"], e["args"].get("filename")) for e in events]
    return found[-1]


def alerts(events: list[dict[str, Any]]) -> set[str]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id for a in engine.process_batch(events) + engine.flush()}


@pytest.fixture
def scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mt-exe-", dir="/tmp")).resolve()
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def packaged() -> Iterator[Path]:
    """A directory under /usr/local (root-owned, where packaged programs live)."""
    d = Path(f"/usr/local/lib/mt-exe-{os.getpid()}")
    d.mkdir(mode=0o755, exist_ok=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    dst.chmod(0o755)
    return dst


def test_relative_exec_after_cd_is_the_resolved_file(collector: Collector, scratch: Path) -> None:
    x = _copy(build("exe_spell"), scratch / "x")
    _, ev = launch(collector, "run", str(scratch), "./x", "wx")
    e = exec_of(ev, "./x")
    assert e["process"]["exe"] == str(x) and e["process"]["exe_source"] == "kernel"
    assert e["args"]["exe_path"] == str(x)
    mp = [m for m in ev if m["syscall"] == "mprotect" and m["args"].get("wx")]
    assert mp and mp[0]["process"]["exe"] == str(x)  # later events of the process too


def test_symlink_named_nginx_is_the_shell_copy(collector: Collector, scratch: Path) -> None:
    shell = _copy(Path("/usr/bin/dash"), scratch / "sh-copy")
    (scratch / "nginx").symlink_to(shell)
    _, ev = launch(collector, "run", str(scratch), "./nginx", "-c", "exit 0")
    e = exec_of(ev, "./nginx")
    assert e["process"]["comm"] == "nginx"  # the name the attacker picked stays in comm
    assert (e["process"]["exe"], e["process"]["exe_source"]) == (str(shell), "kernel")
    assert e["process"]["cmdline"].startswith("./nginx")


def test_respelled_path_is_the_packaged_file(collector: Collector) -> None:
    _, ev = launch(collector, "run", "/", "//usr/./bin//dash", "-c", "exit 0")
    e = exec_of(ev, "//usr/./bin//dash")
    assert (e["process"]["exe"], e["process"]["exe_source"]) == ("/usr/bin/dash", "kernel")


def test_proc_route_names_the_same_file(collector: Collector, scratch: Path) -> None:
    """A process learned from /proc (sensor start-up, a miss) gets the exe the exec gave."""
    shell = _copy(Path("/usr/bin/dash"), scratch / "sh-copy")
    (scratch / "nginx").symlink_to(shell)
    p = subprocess.Popen([str(build("exe_spell")), "run", str(scratch), "./nginx", "-c", "sleep 2; exit 0"])
    try:
        found = collector.wait_for(
            lambda e: (
                e["syscall"] == "execve"
                and e["process"]["pid"] == p.pid
                and e["args"]["filename"] == "./nginx"
            )
        )
        assert found
        from_proc = read_proc(p.pid)
        assert from_proc is not None and from_proc.exe_source == "proc"
        assert from_proc.exe == found[0]["process"]["exe"] == str(shell)
    finally:
        p.wait(timeout=30)


def test_jit_exception_not_granted_to_a_tmp_copy_named_like_one(
    collector: Collector, scratch: Path, packaged: Path
) -> None:
    """W+X by a program named java: exempt when the kernel says it lives under /usr (or is
    reached through a symlink to one), not when it is a copy in /tmp, plain or symlinked."""
    probe = build("exe_spell")
    tmp_java = _copy(probe, scratch / "java")
    usr_java = _copy(probe, packaged / "java")
    (scratch / "link").mkdir()
    (scratch / "link" / "java").symlink_to(usr_java)

    _, ev_tmp = launch(collector, "run", str(scratch), "./java", "wx")
    assert exec_of(ev_tmp, "./java")["process"]["exe"] == str(tmp_java)
    got = alerts(ev_tmp)
    assert {"MT-MEM-002", "MT-MEM-003"} <= got, got

    _, ev_usr = launch(collector, "run", str(packaged), "./java", "wx")
    assert exec_of(ev_usr, "./java")["process"]["exe"] == str(usr_java)
    got = alerts(ev_usr)
    assert not {"MT-MEM-002", "MT-MEM-003"} & got, got

    # a symlink in /tmp to the packaged file is the packaged file: the kernel executed it
    _, ev_link = launch(collector, "run", str(scratch / "link"), "./java", "wx")
    assert exec_of(ev_link, "./java")["process"]["exe"] == str(usr_java)
    assert not {"MT-MEM-002", "MT-MEM-003"} & alerts(ev_link)

    # and a symlink named java in /usr/local to the /tmp copy is the /tmp copy
    alias = packaged / "alias"
    alias.mkdir()
    (alias / "java").symlink_to(tmp_java)
    _, ev_alias = launch(collector, "run", str(alias), "./java", "wx")
    assert exec_of(ev_alias, "./java")["process"]["exe"] == str(tmp_java)
    assert {"MT-MEM-002", "MT-MEM-003"} <= alerts(ev_alias)
