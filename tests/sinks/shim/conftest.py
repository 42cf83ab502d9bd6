"""Shim fixtures: a real throwaway PostgreSQL, the store on both back ends, an API client."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from memtrail.core.broker import free_port
from schemas.alerts import Alert
from sinks.shim.store import Store
from tests.sinks.shim.shimkit import heartbeat, make_alert, make_client, sample_alerts

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def alert_factory() -> Callable[..., Alert]:
    return make_alert


@pytest.fixture
def sample() -> list[Alert]:
    return sample_alerts()


# -- a real PostgreSQL, throwaway ----------------------------------------------------------------


def _pg_unavailable() -> str | None:
    if not (PG_BIN / "initdb").exists():
        return "PostgreSQL 15 server binaries not installed (Debian postgresql)"
    if os.geteuid() != 0:
        return "starting a throwaway PostgreSQL cluster needs root (runuser -u postgres)"
    if shutil.which("runuser") is None:
        return "runuser not found"
    return None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh cluster in a temp dir, owned by `postgres`, on a free port; removed at the end."""
    reason = _pg_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="memtrail-pg-"))
    os.chmod(base, 0o755)
    data = base / "data"
    shutil.chown(base, "postgres", "postgres")
    port = free_port()
    run = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *run,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(base / "pg.log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(str(tmp_path / "shim.sqlite3"))
    else:
        url = request.getfixturevalue("pg_url")
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS shim_alerts, shim_heartbeats, shim_patterns, shim_audit")
        s = Store(url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def client(store: Store, sample: list[Alert]) -> Iterator[TestClient]:
    """API client (Bearer token) on a store holding the ten sample alerts and two sensors."""
    store.upsert_alerts(sample)
    store.upsert_heartbeats([heartbeat("node-1", age_s=2), heartbeat("node-2", age_s=120)])
    with make_client(store) as c:
        yield c
