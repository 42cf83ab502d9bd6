"""Can the sensor attach on this machine? One check, used by ``memtrail sensor`` and ``memtrail up``."""

from __future__ import annotations

import os
from pathlib import Path


class PreflightError(RuntimeError):
    """A requirement is missing: the message says which and what to do."""


CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def preflight() -> None:
    """Refuse early, with one clear line, when the sensor cannot attach."""
    try:
        status = Path("/proc/self/status").read_text()
        cap_eff = int(next(x for x in status.splitlines() if x.startswith("CapEff:")).split()[1], 16)
    except (OSError, StopIteration, ValueError):
        cap_eff = 0
    if not (cap_eff >> CAP_SYS_ADMIN & 1 or (cap_eff >> CAP_BPF & 1 and cap_eff >> CAP_PERFMON & 1)):
        raise PreflightError(
            "the sensor needs root or CAP_BPF+CAP_PERFMON (+SYS_RESOURCE, SYS_PTRACE): run as root"
        )
    try:
        import bcc  # noqa: F401
    except ImportError as exc:
        raise PreflightError(
            "bcc does not import: install Debian's python3-bpfcc and use a venv made with "
            "--system-site-packages (make run does both)"
        ) from exc
    if not Path("/sys/kernel/tracing/events/syscalls").is_dir():
        raise PreflightError("tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing")
    release = os.uname().release
    if not Path(f"/lib/modules/{release}/build").exists():
        raise PreflightError(
            f"kernel headers missing: /lib/modules/{release}/build (scripts/bootstrap.sh links them)"
        )
    if not Path("/sys/kernel/btf/vmlinux").exists():
        raise PreflightError(
            "kernel BTF (/sys/kernel/btf/vmlinux) missing: the sensor locates kernel fields with it"
        )
