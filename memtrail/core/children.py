"""How `memtrail` starts its child processes (the local broker, `up`'s components)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from typing import Any


def detach_and_die_with_parent() -> None:
    """``preexec_fn``: own process group (a terminal's Ctrl-C reaches only the parent, which
    stops children in order) and SIGTERM when the parent dies (no orphans)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it is still running after ``timeout`` s; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)
