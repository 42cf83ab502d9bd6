"""Run ``memtrail up`` as a real subprocess and read what it prints and appends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from memtrail.core.broker import free_port
from tests.paths import REPO

ARTIFACTS = REPO / "test-artifacts"
MEMTRAIL = [sys.executable, "-c", "from memtrail.cli import main; main()"]


class UpProc:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")}
        environ.update(env or {})
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self.proc = subprocess.Popen(
            [*MEMTRAIL, "up", *args],
            cwd=REPO,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.stderr):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.3)
                return any(text in line for line in self.stderr)
            time.sleep(0.2)
        return False

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.stderr[-n:])

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def port_args() -> list[str]:
    return [
        "--worker-metrics-port",
        str(free_port()),
        "--worker-web-port",
        str(free_port()),
        "--sensor-metrics-port",
        str(free_port()),
        "--shim-port",
        str(free_port()),
    ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
