"""``memtrail shim`` as a real process: refuses weak secrets, prints a generated token, serves the page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memtrail.core.broker import free_port
from memtrail.core.children import stop_process

MEMTRAIL = Path(sys.executable).with_name("memtrail")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRAIL_")}
    env.update({"MEMTRAIL_SHIM_DB": str(tmp_path / "cli.sqlite3"), **extra})
    return env


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--token", "changeme"], {}, "token is a default"),
        ([], {"MEMTRAIL_SHIM_TOKEN": ""}, "token is a default"),
        ([], {"MEMTRAIL_SHIM_TOKEN": "change-me-to-a-long-random-token"}, "token is a default"),
        (["--basic-user", "admin"], {}, "needs both"),
    ],
)
def test_refuses_default_or_empty_secrets(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    r = subprocess.run(
        [str(MEMTRAIL), "shim", "--port", "0", *args],
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "--insecure-no-auth" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture
def shim_proc(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`memtrail shim` with no credential configured and no Kafka: it generates and prints a token."""
    port = free_port()
    proc = subprocess.Popen(
        [str(MEMTRAIL), "shim", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        token = None
        while time.monotonic() < deadline and token is None:
            line = proc.stdout.readline()
            if not line:
                break
            out += line
            m = re.search(r"#token=(\S+)", line)
            token = m.group(1) if m else None
        assert token, f"no token printed:\n{out}"
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base, token
    finally:
        stop_process(proc)


def test_generated_token_guards_the_api(shim_proc: tuple[str, str]) -> None:
    base, token = shim_proc
    assert len(token) >= 24
    assert httpx.get(base + "/api/v1/security-events", timeout=5).status_code == 401
    r = httpx.get(base + "/api/v1/security-events", headers={"X-API-Key": token}, timeout=5)
    assert r.status_code == 200 and r.json()["total"] == 0
    page = httpx.get(base + "/", timeout=5)
    assert page.status_code == 200 and '<script type="module" src="/static/js/app.js">' in page.text
    assert httpx.get(base + "/static/js/app.js", timeout=5).status_code == 200
    assert "memtrail_shim_http_requests_total" in httpx.get(base + "/metrics", timeout=5).text
    # no broker configured: the self-test says so instead of hanging
    r = httpx.post(
        base + "/api/v1/security-events/test", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert r.status_code == 503


def test_unusable_store_is_one_line_error(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            str(MEMTRAIL),
            "shim",
            "--port",
            "0",
            "--token",
            "a-strong-token-0123456789",
            "--db",
            "postgresql://u@127.0.0.1:1/x",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "cannot connect to PostgreSQL" in r.stderr and "Traceback" not in r.stderr
