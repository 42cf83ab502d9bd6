"""Real eBPF: "a service started a shell" rests on the file the kernel executed.

A program copied to a temp dir as ``consul`` (one of the services MT-EXEC-SVCSHELL watches)
starts a child the way an exploited service would. The shell is reached as ``/bin/sh``, as a
symlink named ``k`` (the old name-based condition missed it), as ``//usr/./bin//dash`` and as
a symlink with a hand-made argv that names the symlink as a script operand after ``-s`` (the
shell then reads commands from stdin), and busybox running its shell applet by argv alone
(``/bin/busybox`` with argv[0] ``sh``: comm ``busybox``; a symlink ``x`` to busybox with
argv[0] ``sh``). Each alerts with T1059.004. The service's own ``#!``
hook script, whose interpreter is the same shell, is the script (``args.script``) and stays
quiet, as it did before.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sensors.cbuild import build
from tests.sensors.conftest import Collector

pytestmark = pytest.mark.ebpf

RULE = "MT-EXEC-SVCSHELL-036"  # consul


@pytest.fixture
def scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mt-shell-", dir="/tmp")).resolve()
    d.chmod(0o755)
    service = d / "consul"
    shutil.copy(build("exe_spell"), service)
    service.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def spawn(collector: Collector, scratch: Path, *argv: str, argv0: str | None = None) -> dict[str, Any]:
    """``consul`` starts ``argv`` (its argv[0] replaced by ``argv0``) in a child; the child's
    exec event (with process facts)."""
    mode = (
        ["spawn", str(scratch), *argv]
        if argv0 is None
        else ["spawnas", str(scratch), argv[0], argv0, *argv[1:]]
    )
    p = subprocess.Popen([str(scratch / "consul"), *mode], stdin=subprocess.DEVNULL)
    assert p.wait(timeout=30) == 0, argv
    found = collector.wait_for(
        lambda e: (
            e["syscall"] in ("execve", "execveat")
            and e["process"]["ppid"] == p.pid
            and e["args"]["filename"] == argv[0]
        ),
        timeout=10,
    )
    assert found, argv
    time.sleep(0.1)
    return found[-1]


def alerts(event: dict[str, Any]) -> dict[str, list[str]]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id: list(a.threat.technique.id) for a in engine.process_batch([event]) + engine.flush()}


def test_plain_sh_c(collector: Collector, scratch: Path) -> None:
    e = spawn(collector, scratch, "/bin/sh", "-c", "exit 0")
    assert e["process"]["exe"] == "/usr/bin/dash" and e["args"]["script"] is False
    assert "T1059.004" in alerts(e)[RULE]


def test_symlink_named_k(collector: Collector, scratch: Path) -> None:
    (scratch / "k").symlink_to("/bin/sh")
    e = spawn(collector, scratch, "./k", "-c", "exit 0")
    assert e["process"]["comm"] == "k" and e["process"]["exe"] == "/usr/bin/dash"
    assert "T1059.004" in alerts(e)[RULE]


def test_respelled_path(collector: Collector, scratch: Path) -> None:
    e = spawn(collector, scratch, "//usr/./bin//dash", "-c", "exit 0")
    assert "T1059.004" in alerts(e)[RULE]


def test_symlink_posing_as_a_script_operand(collector: Collector, scratch: Path) -> None:
    """argv ``[./k, -s, ./k]`` looks like a #! rewrite, but -s makes the shell read stdin."""
    (scratch / "k").symlink_to("/bin/sh")
    e = spawn(collector, scratch, "./k", "-s", "./k")
    assert e["args"]["argv"] == ["./k", "-s", "./k"] and e["args"]["script"] is False
    assert "T1059.004" in alerts(e)[RULE]


def test_the_services_own_script_is_quiet(collector: Collector, scratch: Path) -> None:
    hook = scratch / "hook"
    hook.write_text("#!/bin/sh -e\nexit 0\n")
    hook.chmod(0o755)
    e = spawn(collector, scratch, "./hook")
    assert e["process"]["exe"] == "/usr/bin/dash"
    assert e["args"]["script"] is True and e["args"]["argv"][:3] == ["/bin/sh", "-e", "./hook"]
    assert RULE not in alerts(e)


def test_busybox_with_argv0_sh(collector: Collector, scratch: Path) -> None:
    e = spawn(collector, scratch, "/bin/busybox", "-c", "exit 0", argv0="sh")
    assert e["process"]["comm"] == "busybox" and e["args"]["applet"] == "sh"
    assert "T1059.004" in alerts(e)[RULE]


def test_busybox_through_a_symlink_named_x(collector: Collector, scratch: Path) -> None:
    (scratch / "x").symlink_to("/bin/busybox")
    e = spawn(collector, scratch, "./x", "-c", "exit 0", argv0="/tmp/sh")
    assert e["process"]["comm"] == "x" and e["process"]["exe"].endswith("/busybox")
    assert "T1059.004" in alerts(e)[RULE]


def test_busybox_running_another_applet_is_not_a_shell(collector: Collector, scratch: Path) -> None:
    e = spawn(collector, scratch, "/bin/busybox", "true", argv0="busybox")
    assert e["args"]["applet"] == "true"
    assert RULE not in alerts(e)
