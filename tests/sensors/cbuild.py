"""Compile the C triggers in ``tests/sensors/c/`` with gcc, once per source content."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

C_DIR = Path(__file__).with_name("c")
_OUT = Path(tempfile.gettempdir()) / "memtrail-ctriggers"


def build_lib(name: str) -> Path:
    """Path of the shared library built from ``c/<name>.c`` (``lib<name>.so``)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the C triggers")
    src = C_DIR / f"{name}.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    lib = _OUT / f"{digest}-so" / f"lib{name}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(".tmp")
        subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(tmp), str(src)], check=True)
        tmp.rename(lib)
    return lib


def build(name: str, *, static: bool = False) -> Path:
    """Path of the executable built from ``c/<name>.c`` (skips the test when gcc is missing).

    ``static``: linked statically, to run inside a container image that has no libc.
    """
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the C triggers")
    src = C_DIR / f"{name}.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    # the executable keeps the source's name (it is the process's comm, which tests match on)
    exe = _OUT / f"{digest}{'-static' if static else ''}" / name
    if not exe.exists():
        exe.parent.mkdir(parents=True, exist_ok=True)
        tmp = exe.with_suffix(".tmp")
        subprocess.run(["gcc", "-O1", *(["-static"] if static else []), "-o", str(tmp), str(src)], check=True)
        tmp.rename(exe)
    return exe


def drained_run(collector: Any, argv: list[str], timeout: float = 30.0) -> str:
    """Run a trigger while draining the collector's ring buffer; its stdout.

    On a busy machine the 8 MiB ring fills in well under a second when nobody reads it:
    the trigger's own events must not be the ones dropped.
    """
    collector.program.poll()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while p.poll() is None:
        collector.program.poll()
        if time.monotonic() > deadline:
            p.kill()
            break
        time.sleep(0.005)
    out, err = p.communicate()
    collector.program.poll()
    if p.returncode != 0:
        raise AssertionError(f"{argv} failed ({p.returncode}): {err}")
    return out


def trigger_pid(collector: Any, name: str, mode: str) -> int:
    """The pid of the latest ``<name> <mode>`` exec the sensor saw, once that process exited."""
    execs = collector.wait_for(
        lambda e: (
            e["syscall"] == "execve" and e["args"]["argv"][1:2] == [mode] and name in e["args"]["filename"]
        ),
        timeout=20,
    )
    assert execs, f"exec of {name} {mode} not seen (sensor counters: {collector.program.counters()})"
    pid = int(max(execs, key=lambda e: e["ts_ns"])["process"]["pid"])
    collector.wait_for(lambda e: e["syscall"] == "process_exit" and e["process"]["pid"] == pid, timeout=20)
    collector.program.poll()
    return pid
