"""Real eBPF + podman: container drift from the overlay inode (upper layer, not in the image)."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import pytest

from tests.sensors.conftest import Collector
from tests.sensors.rootfs import RUN

pytestmark = [pytest.mark.ebpf, pytest.mark.podman, pytest.mark.slow]


def alerts(events: list[dict[str, Any]]) -> dict[str, Any]:
    from memtrail.core.settings import DEFAULT_PATTERNS_DIR
    from patterns.engine.api import load_engine

    engine = load_engine([DEFAULT_PATTERNS_DIR])
    return {a.rule.id: a for a in engine.process_batch(events) + engine.flush()}


def in_container(collector: Collector, image: str, script: str, marker: str) -> list[dict[str, Any]]:
    """Run ``sh -c script`` in a fresh container; the execs whose argv carries ``marker``."""
    p = subprocess.run([*RUN, image, "/bin/sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    found = collector.wait_for(
        lambda e: e["syscall"] == "execve" and marker in e["args"]["argv"] and e["ret"] == 0, timeout=20
    )
    assert found, f"exec with {marker} not seen ({collector.program.counters()})"
    return found


def test_copied_binary_is_drift(image: str, collector: Collector) -> None:
    m = f"mt{uuid.uuid4().hex[:8]}"
    # busybox picks its applet by argv[0]: run the copy through a symlink named "true"
    (x,) = in_container(collector, image, f"cp /bin/busybox /tmp/x && ln -s x /tmp/true && /tmp/true {m}", m)
    f = x["args"]["exe_file"]
    assert x["container_id"] and x["args"]["exe_path"] == "/tmp/x"
    assert f["fs"] == "overlayfs" and f["upper_layer"] is True and f["in_image"] is False
    got = alerts([x])
    assert "MT-DRIFT-001" in got and "T1105" in got["MT-DRIFT-001"].threat.technique.id


def test_image_binary_is_not_drift(image: str, collector: Collector) -> None:
    m = f"mt{uuid.uuid4().hex[:8]}"
    (x,) = in_container(collector, image, f"/bin/true {m}", m)
    f = x["args"]["exe_file"]
    assert f["fs"] == "overlayfs" and f["upper_layer"] is False and f["in_image"] is True
    assert not [r for r in alerts([x]) if r.startswith("MT-DRIFT")]


def test_modified_image_binary_is_copied_up(image: str, collector: Collector) -> None:
    # chmod copies the file up: upper layer, with a lower copy (modified, not new)
    m = f"mt{uuid.uuid4().hex[:8]}"
    (x,) = in_container(collector, image, f"chmod 0755 /bin/busybox && /bin/true {m}", m)
    f = x["args"]["exe_file"]
    assert f["upper_layer"] is True and f["in_image"] is True
    got = alerts([x])
    assert "MT-DRIFT-001" not in got and got["MT-DRIFT-002"].rule.severity == "info"
