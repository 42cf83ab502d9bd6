"""Podman's Docker-compatible API for one local run, when no engine socket answers.

On a podman host nothing serves the Docker Engine API unless ``podman.socket`` is enabled,
so container events would carry an id with no name or image. ``memtrail up`` starts
``podman system service`` on a private socket for its own run (and stops it) instead.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

from memtrail.core.children import detach_and_die_with_parent, stop_process

log = logging.getLogger(__name__)

#: Where a Docker-API socket is looked for (the sensor's own defaults, sensors/containers.py).
KNOWN_SOCKETS = (Path("/run/podman/podman.sock"), Path("/var/run/docker.sock"))


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(str(self._path))
        self.sock = s


def answers(path: Path, timeout: float = 1.0) -> bool:
    """The socket serves the Docker Engine API (``GET /_ping`` is 200)."""
    if not path.exists():
        return False
    conn = _UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class PodmanApiService:
    """``podman system service`` on ``sock`` until :meth:`stop`."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def needed(cls, configured: str | None) -> bool:
        """Podman is installed, no socket is configured, and none of the known ones answers."""
        return (
            not configured
            and shutil.which("podman") is not None
            and not any(answers(p) for p in KNOWN_SOCKETS)
        )

    def start(self, timeout: float = 20.0) -> PodmanApiService:
        self.sock.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.sock}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=detach_and_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if answers(self.sock):
                log.info("podman API service on %s for this run", self.sock)
                return self
            if self._proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"podman system service did not answer on {self.sock} within {timeout:.0f}s")

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, 5)
            self._proc = None
        with contextlib.suppress(OSError):
            self.sock.unlink()
