"""The shim's store: alerts (upserted by id, highest revision wins), sensor heartbeats, custom patterns.

An alert may be an incident of several patterns: ``rule_id`` is its primary pattern,
``patterns`` (``,id,id,``) every one of them, which the pattern filter and the free-text
search match; ``revision`` grows when a repeat is counted or a pattern joins.

SQLite by default (a file path or ``sqlite:///path``), PostgreSQL by URL (psycopg 3).
Both speak the same SQL here (``INSERT ... ON CONFLICT ... DO UPDATE``); only the
placeholder style and the bucket expression differ. One connection behind a lock:
the shim is a small read-mostly service, the consumer writes in batches.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from schemas.alerts import SEVERITY_ORDER, Alert, publication_version
from schemas.heartbeat import SensorHeartbeat
from sinks.shim.filters import EventFilter, Page

SEVERITY_BY_RANK = {v: k for k, v in SEVERITY_ORDER.items()}

_ALERT_COLUMNS = (
    "id",
    "ts",
    "first_seen",
    "last_seen",
    "severity",
    "severity_rank",
    "rule_id",
    "rule_name",
    "techniques",
    "tactics",
    "threat",
    "container_id",
    "container_name",
    "host",
    "executable",
    "message",
    "count",
    "patterns",
    "revision",
    "search",
    "doc",
    "received",
)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS shim_alerts (
        id TEXT PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        severity TEXT NOT NULL,
        severity_rank INTEGER NOT NULL,
        rule_id TEXT NOT NULL,
        rule_name TEXT NOT NULL,
        techniques TEXT NOT NULL,
        tactics TEXT NOT NULL,
        threat TEXT NOT NULL,
        container_id TEXT,
        container_name TEXT,
        host TEXT NOT NULL,
        executable TEXT,
        message TEXT NOT NULL,
        count BIGINT NOT NULL,
        patterns TEXT NOT NULL DEFAULT '',
        revision BIGINT NOT NULL DEFAULT 1,
        search TEXT NOT NULL,
        doc TEXT NOT NULL,
        received DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS shim_alerts_last_seen ON shim_alerts (last_seen)",
    "CREATE INDEX IF NOT EXISTS shim_alerts_rule ON shim_alerts (rule_id)",
    "CREATE INDEX IF NOT EXISTS shim_alerts_container ON shim_alerts (container_id)",
    """CREATE TABLE IF NOT EXISTS shim_heartbeats (
        sensor_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        doc TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS shim_patterns (
        id TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS shim_audit (
        id TEXT PRIMARY KEY,
        time DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        client TEXT NOT NULL,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS shim_audit_time ON shim_audit (time)",
)

#: Columns added after the first release: (name, definition), added to an older table at start.
_ADDED_COLUMNS = (
    ("patterns", "TEXT NOT NULL DEFAULT ''"),
    ("revision", "BIGINT NOT NULL DEFAULT 1"),
)

_SORT_COLUMNS = {
    "last_seen": "last_seen",
    "first_seen": "first_seen",
    "timestamp": "ts",
    "severity": "severity_rank",
    "count": "count",
    "rule": "rule_id",
}
_GROUP_SORT_COLUMNS = {
    "last_seen": "last_seen",
    "first_seen": "first_seen",
    "timestamp": "first_seen",
    "severity": "severity_rank",
    "count": "occurrences",
    "rule": "rule_id",
}
_GROUP_KEY = "COALESCE(container_id, 'host:' || host)"


class StoreError(RuntimeError):
    """The database could not be opened or used."""


def _epoch(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def alert_row(alert: Alert) -> dict[str, Any]:
    """The indexed columns of one alert; the whole alert is kept as JSON in ``doc``."""
    doc = alert.to_json_dict()
    tech = alert.threat.technique
    container_name = alert.container.name
    search = " ".join(
        str(x)
        for x in (
            alert.message,
            alert.rule.id,
            alert.rule.name,
            alert.process.executable,
            alert.process.command_line,
            alert.process.name,
            alert.container.id,
            container_name,
            alert.container.image,
            alert.host.name,
            *tech.id,
            *tech.name,
            *(p.id for p in alert.patterns),
            *(p.name for p in alert.patterns),
        )
        if x
    ).lower()
    return {
        "id": alert.id,
        "ts": _epoch(alert.timestamp),
        "first_seen": _epoch(alert.first_seen),
        "last_seen": _epoch(alert.last_seen),
        "severity": alert.rule.severity,
        "severity_rank": SEVERITY_ORDER[alert.rule.severity],
        "rule_id": alert.rule.id,
        "rule_name": alert.rule.name,
        "techniques": "," + ",".join(tech.id) + ",",
        "tactics": "," + ",".join(alert.threat.tactic.id + alert.threat.tactic.name) + ",",
        "threat": orjson.dumps(doc["threat"]).decode(),
        "container_id": alert.container.id or None,
        "container_name": container_name,
        "host": alert.host.name,
        "executable": alert.process.executable,
        "message": alert.message,
        "count": alert.count,
        "patterns": "," + ",".join(alert.pattern_ids()) + ",",
        "revision": publication_version(doc),
        "search": search,
        "doc": orjson.dumps(doc).decode(),
        "received": time.time(),
    }


class Store:
    """Alerts, heartbeats and custom patterns in SQLite or PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        if url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            try:
                import psycopg

                self._conn: Any = psycopg.connect(url, autocommit=True)
            except Exception as exc:
                raise StoreError(f"cannot connect to PostgreSQL {redact_url(url)}: {exc}") from exc
        else:
            self.dialect = "sqlite"
            path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
            try:
                if path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across app crashes
            except (sqlite3.Error, OSError) as exc:
                raise StoreError(f"cannot open SQLite database {path}: {exc}") from exc
        with self._lock:
            for stmt in _SCHEMA:
                self._conn.execute(stmt)
            self._add_columns()

    def _add_columns(self) -> None:
        """Bring a table created by an older version up to date (both dialects, idempotent)."""
        for name, definition in _ADDED_COLUMNS:
            try:
                self._conn.execute(f"SELECT {name} FROM shim_alerts LIMIT 0")
            except Exception:  # sqlite3.OperationalError / psycopg.errors.UndefinedColumn
                self._conn.execute(f"ALTER TABLE shim_alerts ADD COLUMN {name} {definition}")

    # -- plumbing -------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def _alive(self) -> None:
        """PostgreSQL restarted or the network dropped: open a new connection (else raise)."""
        if self.dialect == "postgresql" and self._conn.closed:
            import psycopg

            try:
                self._conn = psycopg.connect(self.url, autocommit=True)
            except Exception as exc:
                raise StoreError(f"cannot reconnect to PostgreSQL {redact_url(self.url)}: {exc}") from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            self._alive()
            cur = self._conn.execute(self._sql(sql), tuple(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._lock:
            self._alive()
            cur = self._conn.execute(self._sql(sql), tuple(params))
            return int(cur.rowcount or 0)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._lock:
            self._alive()
            if self.dialect == "postgresql":
                with self._conn.transaction():
                    yield self._conn.cursor()
            else:
                self._conn.execute("BEGIN")
                try:
                    yield self._conn.cursor()
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")

    def _bucket_expr(self, column: str, width: float) -> str:
        """Bucket number of a time column; the width is a float we computed, inlined as a literal."""
        w = repr(float(width))
        return (
            f"FLOOR({column} / {w})" if self.dialect == "postgresql" else f"CAST({column} / {w} AS INTEGER)"
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def ping(self) -> bool:
        try:
            self._query("SELECT 1 AS one")
            return True
        except Exception:
            return False

    # -- alerts ---------------------------------------------------------------------------------

    def upsert_alerts(self, alerts: Iterable[Alert]) -> int:
        """Insert or update in place; an older copy (lower revision, i.e. fewer repeats or
        patterns) never overwrites a newer one."""
        cols = ", ".join(_ALERT_COLUMNS)
        marks = ", ".join("?" for _ in _ALERT_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _ALERT_COLUMNS if c != "id")
        sql = self._sql(
            f"INSERT INTO shim_alerts ({cols}) VALUES ({marks}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates} WHERE excluded.revision >= shim_alerts.revision"
        )
        rows = [tuple(row[c] for c in _ALERT_COLUMNS) for row in map(alert_row, alerts)]
        if not rows:
            return 0
        with self._transaction() as cur:
            cur.executemany(sql, rows)
        return len(rows)

    def _where(self, f: EventFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []

        def any_of(column: str, values: Sequence[str], like: str | None = None) -> None:
            if not values:
                return
            if like:
                clauses.append("(" + " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in values) + ")")
                params.extend(like.format(_escape_like(v)) for v in values)
            else:
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)

        any_of("severity", f.severity)
        if f.rule:  # any pattern of an incident, the primary (rule_id) or another
            clauses.append(
                "(rule_id IN ("
                + ", ".join("?" for _ in f.rule)
                + ") OR "
                + " OR ".join("patterns LIKE ? ESCAPE '\\'" for _ in f.rule)
                + ")"
            )
            params.extend(f.rule)
            params.extend(f"%,{_escape_like(r)},%" for r in f.rule)
        any_of("techniques", [t.upper() for t in f.technique], like="%,{},%")
        any_of("tactics", f.tactic, like="%,{},%")
        any_of("id", f.ids)
        if f.container_mode == "with":
            clauses.append("container_id IS NOT NULL")
        elif f.container_mode == "without":
            clauses.append("container_id IS NULL")
        if f.container:
            clauses.append(
                "(container_id LIKE ? ESCAPE '\\' OR LOWER(COALESCE(container_name, '')) LIKE ? ESCAPE '\\')"
            )
            params += [_escape_like(f.container) + "%", "%" + _escape_like(f.container.lower()) + "%"]
        if f.host:
            clauses.append("host = ?")
            params.append(f.host)
        if f.since:
            clauses.append("last_seen >= ?")
            params.append(_epoch(f.since))
        if f.until:
            clauses.append("first_seen <= ?")
            params.append(_epoch(f.until))
        if f.q:
            for word in f.q.lower().split():
                clauses.append("search LIKE ? ESCAPE '\\'")
                params.append("%" + _escape_like(word) + "%")
        sql = " WHERE " + " AND ".join(clauses) if clauses else ""
        return sql, params

    def list_alerts(self, f: EventFilter, page: Page) -> tuple[int, list[dict[str, Any]]]:
        """(total matching, one page of alert documents)."""
        where, params = self._where(f)
        total = self._query(f"SELECT COUNT(*) AS n FROM shim_alerts{where}", params)[0]["n"]
        order = "DESC" if page.order == "desc" else "ASC"
        col = _SORT_COLUMNS[page.sort]
        rows = self._query(
            f"SELECT doc FROM shim_alerts{where} ORDER BY {col} {order}, id {order} LIMIT ? OFFSET ?",
            [*params, page.limit, page.offset],
        )
        return int(total), [orjson.loads(r["doc"]) for r in rows]

    def list_groups(
        self, f: EventFilter, page: Page, spark_buckets: int = 12
    ) -> tuple[int, list[dict[str, Any]]]:
        """Identical alerts (same pattern, same container — or host) as one row with counts."""
        where, params = self._where(f)
        inner = (
            f"SELECT rule_id, {_GROUP_KEY} AS gkey, MAX(rule_name) AS rule_name,"
            " MAX(severity_rank) AS severity_rank, MAX(techniques) AS techniques, MAX(threat) AS threat,"
            " MAX(container_id) AS container_id, MAX(container_name) AS container_name, MAX(host) AS host,"
            " COUNT(*) AS alerts, SUM(count) AS occurrences, MIN(first_seen) AS first_seen,"
            " MAX(last_seen) AS last_seen, MAX(id) AS sample_id"
            f" FROM shim_alerts{where} GROUP BY rule_id, {_GROUP_KEY}"
        )
        total = self._query(f"SELECT COUNT(*) AS n FROM ({inner}) g", params)[0]["n"]
        order = "DESC" if page.order == "desc" else "ASC"
        col = _GROUP_SORT_COLUMNS[page.sort]
        rows = self._query(
            f"SELECT * FROM ({inner}) g ORDER BY {col} {order}, rule_id, gkey LIMIT ? OFFSET ?",
            [*params, page.limit, page.offset],
        )
        groups = []
        for r in rows:
            threat = orjson.loads(r["threat"])
            groups.append(
                {
                    "key": f"{r['rule_id']}|{r['gkey']}",
                    "rule": {"id": r["rule_id"], "name": r["rule_name"]},
                    "severity": SEVERITY_BY_RANK.get(int(r["severity_rank"]), "info"),
                    "threat": threat,
                    "container": {"id": r["container_id"], "name": r["container_name"]},
                    "host": r["host"],
                    "alerts": int(r["alerts"]),
                    "count": int(r["occurrences"]),
                    "first_seen": _iso(r["first_seen"]),
                    "last_seen": _iso(r["last_seen"]),
                    "sample_id": r["sample_id"],
                    "sparkline": [],
                }
            )
        if groups:
            self._add_patterns(where, params, groups)
        if groups and spark_buckets > 0:
            self._add_sparklines(where, params, groups, rows, spark_buckets)
        return int(total), groups

    def _add_patterns(self, where: str, params: list[Any], groups: list[dict[str, Any]]) -> None:
        """Every pattern id of each group's incidents: its rule first, then the others."""
        found: dict[str, set[str]] = {}
        for r in self._query(
            f"SELECT rule_id, {_GROUP_KEY} AS gkey, patterns FROM shim_alerts{where}"
            f" GROUP BY rule_id, {_GROUP_KEY}, patterns",
            params,
        ):
            ids = found.setdefault(f"{r['rule_id']}|{r['gkey']}", set())
            ids.update(x for x in str(r["patterns"] or "").split(",") if x)
        for g in groups:
            rule = g["rule"]["id"]
            g["patterns"] = [rule, *sorted(found.get(g["key"], set()) - {rule})]

    def _add_sparklines(
        self,
        where: str,
        params: list[Any],
        groups: list[dict[str, Any]],
        rows: list[dict[str, Any]],
        n: int,
    ) -> None:
        """Occurrences per time slice (by each alert's last_seen) over the page's time span."""
        start = min(float(r["first_seen"]) for r in rows)
        end = max(float(r["last_seen"]) for r in rows)
        width = max((end - start) / n, 1.0)
        bucket = self._bucket_expr(f"(last_seen - {float(start)!r})", width)
        spark = self._query(
            f"SELECT rule_id, {_GROUP_KEY} AS gkey, {bucket} AS b, SUM(count) AS c"
            f" FROM shim_alerts{where} GROUP BY rule_id, {_GROUP_KEY}, {bucket}",
            params,
        )
        by_key = {g["key"]: g for g in groups}
        for g in groups:
            g["sparkline"] = [0] * n
        for s in spark:
            hit = by_key.get(f"{s['rule_id']}|{s['gkey']}")
            if hit is not None:
                hit["sparkline"][min(max(int(s["b"]), 0), n - 1)] += int(s["c"])

    def stats_count(self) -> int:
        return int(self._query("SELECT COUNT(*) AS n FROM shim_alerts")[0]["n"])

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT doc FROM shim_alerts WHERE id = ?", [alert_id])
        return orjson.loads(rows[0]["doc"]) if rows else None

    def delete_alerts(self, f: EventFilter) -> int:
        where, params = self._where(f)
        return self._execute(f"DELETE FROM shim_alerts{where}", params)

    def stats(self, f: EventFilter, bucket_s: float | None = None) -> dict[str, Any]:
        where, params = self._where(f)
        tot = self._query(
            "SELECT COUNT(*) AS alerts, COALESCE(SUM(count), 0) AS occurrences,"
            " COUNT(DISTINCT container_id) AS containers, COUNT(DISTINCT host) AS hosts,"
            " COUNT(DISTINCT rule_id) AS rules, MIN(first_seen) AS first, MAX(last_seen) AS last"
            f" FROM shim_alerts{where}",
            params,
        )[0]
        by_sev = {s: {"alerts": 0, "occurrences": 0} for s in SEVERITY_ORDER}
        for r in self._query(
            f"SELECT severity, COUNT(*) AS a, SUM(count) AS o FROM shim_alerts{where} GROUP BY severity",
            params,
        ):
            by_sev[r["severity"]] = {"alerts": int(r["a"]), "occurrences": int(r["o"])}
        techniques: dict[str, dict[str, Any]] = {}
        tactics: dict[str, dict[str, Any]] = {}
        for r in self._query(
            f"SELECT threat, COUNT(*) AS a, SUM(count) AS o FROM shim_alerts{where} GROUP BY threat", params
        ):
            threat = orjson.loads(r["threat"])
            tech = threat.get("technique", {})
            names = tech.get("name", [])
            for i, tid in enumerate(tech.get("id", [])):
                e = techniques.setdefault(
                    tid,
                    {"id": tid, "name": names[i] if i < len(names) else None, "alerts": 0, "occurrences": 0},
                )
                e["alerts"] += int(r["a"])
                e["occurrences"] += int(r["o"])
            tac = threat.get("tactic", {})
            tnames = tac.get("name", [])
            for i, tid in enumerate(tac.get("id", []) or tnames):
                e = tactics.setdefault(
                    tid,
                    {
                        "id": tid,
                        "name": tnames[i] if i < len(tnames) else None,
                        "alerts": 0,
                        "occurrences": 0,
                    },
                )
                e["alerts"] += int(r["a"])
                e["occurrences"] += int(r["o"])
        by_container = [
            {
                "id": r["container_id"],
                "name": r["container_name"],
                "alerts": int(r["a"]),
                "occurrences": int(r["o"]),
            }
            for r in self._query(
                "SELECT container_id, MAX(container_name) AS container_name, COUNT(*) AS a, SUM(count) AS o"
                f" FROM shim_alerts{where} GROUP BY container_id ORDER BY o DESC, container_id LIMIT 20",
                params,
            )
        ]
        by_rule = [
            {"id": r["rule_id"], "name": r["rule_name"], "alerts": int(r["a"]), "occurrences": int(r["o"])}
            for r in self._query(
                "SELECT rule_id, MAX(rule_name) AS rule_name, COUNT(*) AS a, SUM(count) AS o"
                f" FROM shim_alerts{where} GROUP BY rule_id ORDER BY o DESC, rule_id LIMIT 20",
                params,
            )
        ]
        timeline: list[dict[str, Any]] = []
        if tot["alerts"]:
            first = _epoch(f.since) if f.since else float(tot["first"])
            last = _epoch(f.until) if f.until else max(float(tot["last"]), time.time())
            width = bucket_s or nice_bucket(last - first)
            b = self._bucket_expr("last_seen", width)
            slots: dict[int, dict[str, Any]] = {}
            for r in self._query(
                f"SELECT {b} AS b, severity, COUNT(*) AS a, SUM(count) AS o FROM shim_alerts{where}"
                f" GROUP BY {b}, severity",
                params,
            ):
                slot = slots.setdefault(
                    int(r["b"]),
                    {"alerts": 0, "occurrences": 0, "by_severity": dict.fromkeys(SEVERITY_ORDER, 0)},
                )
                slot["alerts"] += int(r["a"])
                slot["occurrences"] += int(r["o"])
                slot["by_severity"][r["severity"]] += int(r["o"])
            lo, hi = int(first // width), int(last // width)
            if hi - lo > 500:  # explicit tiny buckets over a long range: show the occupied ones only
                keys: Iterable[int] = sorted(slots)
            else:
                keys = range(lo, hi + 1)
            for k in keys:
                slot = slots.get(k) or {
                    "alerts": 0,
                    "occurrences": 0,
                    "by_severity": dict.fromkeys(SEVERITY_ORDER, 0),
                }
                timeline.append({"start": _iso(k * width), **slot})
        else:
            width = bucket_s or 60.0

        def top(d: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
            return sorted(d.values(), key=lambda e: (-e["occurrences"], e["id"]))

        return {
            "totals": {
                "alerts": int(tot["alerts"]),
                "occurrences": int(tot["occurrences"]),
                "containers": int(tot["containers"]),
                "hosts": int(tot["hosts"]),
                "rules": int(tot["rules"]),
                "first_seen": _iso(tot["first"]) if tot["first"] is not None else None,
                "last_seen": _iso(tot["last"]) if tot["last"] is not None else None,
            },
            "by_severity": by_sev,
            "by_technique": top(techniques),
            "by_tactic": top(tactics),
            "by_container": by_container,
            "by_rule": by_rule,
            "bucket_s": width,
            "timeline": timeline,
        }

    # -- heartbeats -----------------------------------------------------------------------------

    def upsert_heartbeats(self, beats: Iterable[SensorHeartbeat]) -> int:
        sql = self._sql(
            "INSERT INTO shim_heartbeats (sensor_id, host, time, doc) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (sensor_id) DO UPDATE SET host = excluded.host, time = excluded.time,"
            " doc = excluded.doc WHERE excluded.time >= shim_heartbeats.time"
        )
        rows = [(b.sensor_id, b.host, b.time, b.model_dump_json()) for b in beats]
        if rows:
            with self._transaction() as cur:
                cur.executemany(sql, rows)
        return len(rows)

    def heartbeats(self) -> list[SensorHeartbeat]:
        rows = self._query("SELECT doc FROM shim_heartbeats ORDER BY host, sensor_id")
        return [SensorHeartbeat.model_validate_json(r["doc"]) for r in rows]

    # -- custom patterns ------------------------------------------------------------------------

    def save_pattern(self, pattern_id: str, spec: dict[str, Any]) -> None:
        self._execute(
            "INSERT INTO shim_patterns (id, spec, updated) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated = excluded.updated",
            [pattern_id, orjson.dumps(spec).decode(), time.time()],
        )

    def custom_patterns(self) -> list[dict[str, Any]]:
        return [orjson.loads(r["spec"]) for r in self._query("SELECT spec FROM shim_patterns ORDER BY id")]

    def delete_pattern(self, pattern_id: str) -> bool:
        return self._execute("DELETE FROM shim_patterns WHERE id = ?", [pattern_id]) > 0

    # -- audit log ------------------------------------------------------------------------------

    _AUDIT_COLUMNS = ("id", "time", "actor", "role", "action", "target", "outcome", "client", "detail")

    def add_audit(self, record: dict[str, Any]) -> None:
        """Append one audit record (``detail`` a JSON-serialisable dict); records are never updated."""
        row = [record[c] for c in self._AUDIT_COLUMNS if c != "detail"]
        row.append(orjson.dumps(record.get("detail") or {}).decode())
        marks = ", ".join("?" for _ in self._AUDIT_COLUMNS)
        self._execute(f"INSERT INTO shim_audit ({', '.join(self._AUDIT_COLUMNS)}) VALUES ({marks})", row)

    def audit_records(
        self, limit: int = 100, since: float | None = None, action: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first."""
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        if action:
            where.append("action = ?")
            params.append(action)
        sql = f"SELECT {', '.join(self._AUDIT_COLUMNS)} FROM shim_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY time DESC, id LIMIT ?", [*params, limit])
        for r in rows:
            r["detail"] = orjson.loads(r["detail"])
            r["time"] = _iso(r["time"])
        return rows


def nice_bucket(span_s: float, target: int = 48) -> float:
    """A readable bucket width giving about ``target`` buckets over ``span_s``."""
    for width in (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800):
        if span_s / width <= target:
            return float(width)
    return 2592000.0


def _iso(epoch: float | int) -> str:
    return datetime.fromtimestamp(float(epoch), UTC).isoformat().replace("+00:00", "Z")


def _escape_like(s: str) -> str:
    """User input matches literally: LIKE wildcards are escaped (with ``ESCAPE '\\'``)."""
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def redact_url(url: str) -> str:
    """The URL without its password, for logs and status."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
