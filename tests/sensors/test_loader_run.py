"""Real eBPF: the dynamic loader run as a program (``ld.so PROG``, ``--preload``, ``--audit``).

The kernel execs only the loader; what it then loads is seen as file-backed executable
mmaps the kernel resolved, marked ``args.loader`` because the exec had no ELF interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sensors.cbuild import build_lib
from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf

LOADER = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"


@pytest.fixture(scope="module")
def drop() -> Iterator[Path]:
    """A private temp dir: copies of /bin/true and of the loader as an attacker stages them."""
    if not Path(LOADER).exists():
        pytest.skip("x86_64 glibc loader not found")
    d = Path("/tmp") / f"kf-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    shutil.copy2("/bin/true", d / "prog")
    shutil.copy2(LOADER, d / "helper")  # the loader, renamed
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def shm_prog() -> Iterator[Path]:
    p = Path("/dev/shm") / f"kf-{uuid.uuid4().hex[:8]}"
    shutil.copy2("/bin/true", p)
    yield p
    p.unlink(missing_ok=True)


def run(collector: Collector, argv: list[str], env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run argv directly (no shell: its pid is the loader's process); that pid's events."""
    collector.program.poll()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    pid = p.pid
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == pid, timeout=20)
    collector.program.poll()
    return [e for e in collector.events if e["process"]["pid"] == pid]


def loads(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["args"]["loader"] | {"path": e["args"]["path"]} for e in events if "loader" in e["args"]]


def alerts(events: list[dict[str, Any]]) -> dict[str, Any]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id: a for a in engine.process_batch(events) + engine.flush()}


def the_exec(events: list[dict[str, Any]]) -> dict[str, Any]:
    (x,) = [e for e in events if e["syscall"] == "execve" and e["ret"] == 0]
    return x


def test_loader_runs_a_program_from_dev_shm(collector: Collector, shm_prog: Path) -> None:
    ev = run(collector, [LOADER, str(shm_prog)])
    x = the_exec(ev)
    assert x["args"]["exe_path"] == LOADER and x["args"]["exe_file"]["interp"] is False
    got = loads(ev)
    assert got[0]["role"] == "program" and got[0]["path"] == str(shm_prog) and got[0]["loader"] == LOADER
    assert {g["role"] for g in got[1:]} == {"library"}  # libc
    a = alerts(ev)
    assert "MT-LOADER-RUN-001" in a and "T1218" in a["MT-LOADER-RUN-001"].threat.technique.id


def test_lib64_spelling_and_renamed_loader(collector: Collector, drop: Path) -> None:
    ev = run(collector, ["/lib64/ld-linux-x86-64.so.2", str(drop / "prog")])
    assert the_exec(ev)["args"]["exe_path"] == LOADER  # the symlink resolves to the loader
    assert loads(ev)[0] == loads(ev)[0] | {"role": "program", "path": str(drop / "prog")}
    assert "MT-LOADER-RUN-001" in alerts(ev)
    # a renamed copy of the loader: no name to match, the kernel fact is the same
    ev = run(collector, [str(drop / "helper"), "/bin/true"])
    x = the_exec(ev)
    assert x["args"]["exe_path"] == str(drop / "helper") and x["args"]["exe_file"]["interp"] is False
    assert loads(ev)[0]["role"] == "program" and loads(ev)[0]["path"] == "/usr/bin/true"


def test_preload_and_audit_options(collector: Collector) -> None:
    lib = str(build_lib("evil_lib"))
    for opt in ("--preload", "--audit"):
        ev = run(collector, [LOADER, opt, lib, "/bin/true"])
        got = loads(ev)
        assert got[0]["role"] == "program" and got[0]["path"] == "/usr/bin/true"
        assert any(g["role"] == "library" and g["path"] == lib for g in got), (opt, got)
        a = alerts(ev)
        assert "MT-LOADER-LIB-001" in a, opt
        assert "T1574.006" in a["MT-LOADER-LIB-001"].threat.technique.id
        assert "MT-LOADER-RUN-001" not in a


def test_quiet_cases(collector: Collector, drop: Path) -> None:
    # the loader running a system program, and an ordinary dynamic exec
    ev = run(collector, [LOADER, "/bin/true"])
    assert loads(ev)[0]["path"] == "/usr/bin/true"
    got = alerts(ev)
    assert "MT-LOADER-RUN-002" in got and got["MT-LOADER-RUN-002"].rule.severity == "info"
    assert not [r for r, a in got.items() if a.rule.severity != "info"]
    ev = run(collector, ["/bin/true"])
    assert the_exec(ev)["args"]["exe_file"]["interp"] is True and not loads(ev)
    # ldd: LD_TRACE_LOADED_OBJECTS makes ld.so list the libraries and run nothing
    ev = run(collector, [LOADER, str(drop / "prog")], env={**os.environ, "LD_TRACE_LOADED_OBJECTS": "1"})
    assert the_exec(ev)["args"]["ld_trace"] is True
    assert all(g["trace"] for g in loads(ev))
    assert not [r for r, a in alerts(ev).items() if a.rule.severity != "info"]
