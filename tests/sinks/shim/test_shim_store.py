"""Store behaviour beyond the API: PostgreSQL connection loss, bad locations."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from sinks.shim.store import Store, StoreError
from tests.sinks.shim.shimkit import make_alert


def test_postgresql_reconnects_after_the_connection_is_killed(pg_url: str) -> None:
    store = Store(pg_url)
    store.upsert_alerts([make_alert("r1")])
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = %s",
            ["postgres"],
        )
    with pytest.raises(psycopg.OperationalError):  # the call in flight fails (the consumer retries it)...
        store.stats_count()
    assert store.get_alert("r1") is not None  # ...the next one reconnects
    store.upsert_alerts([make_alert("r2")])
    assert store.stats_count() >= 2
    store.close()


def test_unusable_sqlite_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot open SQLite database"):
        Store(str(blocker / "sub" / "db.sqlite3"))
