"""Real eBPF: a program exec'd without an ELF interpreter that forks before it maps its
payload: the child's executable mapping still carries the ``args.loader`` facts."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sensors.cbuild import build
from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf


@pytest.fixture
def shm_payload() -> Iterator[Path]:
    p = Path("/dev/shm") / f"kf-{uuid.uuid4().hex[:8]}"
    shutil.copy2("/bin/true", p)
    yield p
    p.unlink(missing_ok=True)


def test_child_of_a_loader_that_forked_first(collector: Collector, shm_payload: Path) -> None:
    prog = build("fork_map", static=True)
    p = subprocess.Popen([str(prog), str(shm_payload)])
    assert p.wait(timeout=30) == 0
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == p.pid, timeout=20)
    collector.program.poll()
    x = [
        e
        for e in collector.events
        if e["syscall"] == "execve" and e["process"]["pid"] == p.pid and e["ret"] == 0
    ]
    assert x and x[0]["args"]["exe_file"]["interp"] is False
    maps = [
        e
        for e in collector.events
        if e["syscall"] == "mmap"
        and e["process"]["ppid"] == p.pid
        and e["args"].get("path") == str(shm_payload)
    ]
    assert maps, "no executable mapping of the payload by the child"
    ld = maps[0]["args"]["loader"]
    assert ld["role"] == "program" and ld["program"] == str(shm_payload) and ld["loader"] == str(prog)
