"""Fixtures for the sensor tests: one compiled eBPF program per test module (a compile costs seconds)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: The repository root: the triggers run as ``python -m tests.sensors.triggers`` from there.
ROOT = Path(__file__).resolve().parents[2]


class Collector:
    """Attached SensorProgram whose decoded, enriched events are kept in memory."""

    def __init__(self, **program_kwargs: Any) -> None:
        import socket

        from ebpf.loader import SensorProgram
        from sensors.cgroups import CgroupResolver
        from sensors.context import Context
        from sensors.decoder import Decoder
        from sensors.proctable import ProcTable

        self.decoder = Decoder(socket.gethostname(), time.time() - time.monotonic())
        procs = ProcTable()
        procs.scan()
        self.context = Context(procs, CgroupResolver())
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.program = SensorProgram(self._on, **program_kwargs)

    def _on(self, raw: bytes) -> None:
        self.events.append(self.context.apply(self.decoder.decode(raw)))

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            self.program.poll()
            found = [e for e in self.events if pred(e)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def run(self, action: str, *, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]], str]:
        """Run a trigger; return its pid, the events of that pid (and of its children) and stdout."""
        p = subprocess.Popen(
            [sys.executable, "-m", "tests.sensors.triggers", action],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        out, _ = p.communicate(timeout=30)
        pid = p.pid
        self.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == pid)
        self.program.poll()
        mine = [e for e in self.events if e["process"]["pid"] == pid or e["process"]["ppid"] == pid]
        return pid, mine, out

    def close(self) -> None:
        self.program.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox image imported into podman (built once per module from the test rootfs)."""
    from tests.sensors.rootfs import busybox_image

    return busybox_image(tmp_path_factory.mktemp("rootfs"))


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()
