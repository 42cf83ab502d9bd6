"""REST API on a real store (SQLite and a throwaway PostgreSQL): every endpoint, its filters, its errors."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from sinks.shim.config import ShimSettings
from sinks.shim.store import Store
from tests.sinks.shim.shimkit import CID_DB, CID_WEB, NOW, TOKEN, make_alert, make_client

API = "/api/v1/security-events"


def ids(resp: Any) -> set[str]:
    assert resp.status_code == 200, resp.text
    return {i["id"] for i in resp.json()["items"]}


# -- auth ----------------------------------------------------------------------------------------


def test_api_needs_credentials_health_and_metrics_do_not(client: TestClient) -> None:
    anon = {"Authorization": ""}
    for path in (API, f"{API}/stats", f"{API}/a1", "/api/v1/collector/status", "/api/v1/patterns"):
        r = client.get(path, headers=anon)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.delete(f"{API}/a1", headers=anon).status_code == 401
    assert client.post(f"{API}/test", headers=anon).status_code == 401
    assert client.get(API, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert client.get("/healthz", headers=anon).status_code == 200
    metrics = client.get("/metrics", headers=anon)
    assert metrics.status_code == 200 and "memtrail_shim_http_requests_total" in metrics.text
    assert client.get("/", headers=anon).status_code == 200  # the page itself holds no data


def test_api_key_header_and_basic_auth(store: Store) -> None:
    with make_client(store, basic_user="admin", basic_password="s3cret-long-password") as c:
        assert c.get(API, headers={"Authorization": "", "X-API-Key": TOKEN}).status_code == 200
        good = base64.b64encode(b"admin:s3cret-long-password").decode()
        bad = base64.b64encode(b"admin:nope").decode()
        assert c.get(API, headers={"Authorization": f"Basic {good}"}).status_code == 200
        assert c.get(API, headers={"Authorization": f"Basic {bad}"}).status_code == 401
        assert c.get(API, headers={"Authorization": "Basic !!notbase64"}).status_code == 401


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"token": ""},
        {"token": "changeme"},
        {"token": "short"},
        {"basic_user": "a"},
        {"basic_user": "a", "basic_password": "admin"},
    ],
)
def test_settings_refuse_missing_or_default_secrets(
    kwargs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEMTRAIL_SHIM_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="refusing to start"):
        ShimSettings(**kwargs)  # type: ignore[arg-type]
    assert ShimSettings(insecure_no_auth=True, **kwargs).auth_enabled is False  # type: ignore[arg-type]


def test_insecure_no_auth_serves_without_credentials(store: Store) -> None:
    from fastapi.testclient import TestClient as TC

    with make_client(store) as c:
        c.app.state.ctx.cfg = ShimSettings(insecure_no_auth=True)  # type: ignore[attr-defined]
        assert TC(c.app).get(API).status_code == 200


def test_cors_configurable(store: Store) -> None:
    with make_client(store, cors_origins=["https://portainer.example"]) as c:
        r = c.options(
            API,
            headers={"Origin": "https://portainer.example", "Access-Control-Request-Method": "GET"},
        )
        assert r.headers["access-control-allow-origin"] == "https://portainer.example"
        r = c.options(API, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in r.headers


# -- list and filters ----------------------------------------------------------------------------


def test_container_modes(client: TestClient) -> None:
    with_c = ids(client.get(API))
    assert with_c == {"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"}  # default: with containers
    assert ids(client.get(API, params={"container_mode": "without"})) == {"h1", "h2"}
    assert len(ids(client.get(API, params={"container_mode": "all"}))) == 10
    assert client.get(API, params={"container_mode": "some"}).status_code == 422


def test_filters(client: TestClient) -> None:
    all_ = {"container_mode": "all"}
    assert ids(client.get(API, params={**all_, "severity": "critical"})) == {"a1", "a2", "a3", "h1"}
    assert ids(client.get(API, params={**all_, "severity": ["warning", "info"]})) == {"a6", "a7", "a8"}
    assert ids(client.get(API, params={"rule": "MT-INJECT-PTRACE"})) == {"a4", "a5"}
    # parent and sub-technique both match (alerts carry both ids)
    assert ids(client.get(API, params={**all_, "technique": "T1055"})) == {"a4", "a5", "h2"}
    assert ids(client.get(API, params={**all_, "technique": "t1055.008"})) == {"a4", "a5", "h2"}
    assert ids(client.get(API, params={"tactic": "Persistence"})) == {"a6", "a7"}
    assert ids(client.get(API, params={"container": "db"})) == {"a3", "a5", "a6", "a7"}
    assert ids(client.get(API, params={"container": CID_WEB[:12]})) == {"a1", "a2", "a4", "a8"}
    assert ids(client.get(API, params={"container": "db_replica"})) == {"a7"}  # "_" is literal
    assert ids(client.get(API, params={"container": "d%"})) == set()  # "%" is literal
    assert ids(client.get(API, params={**all_, "host": "node-2"})) == {"h2"}
    assert ids(client.get(API, params={"q": "GDB"})) == {"a4"}
    assert ids(client.get(API, params={"q": "injection web"})) == {"a4"}
    since = (NOW - timedelta(minutes=12)).isoformat()
    until = (NOW - timedelta(minutes=2, seconds=30)).isoformat()
    assert ids(client.get(API, params={**all_, "since": since, "until": until})) == {"a3", "a5", "a7"}
    epoch = str((NOW - timedelta(minutes=4)).timestamp())
    assert ids(client.get(API, params={"since": epoch})) == {"a7", "a8"}


@pytest.mark.parametrize(
    "params",
    [
        {"severity": "fatal"},
        {"technique": "1620"},
        {"technique": "T1620;drop"},
        {"since": "yesterday"},
        {"since": NOW.isoformat(), "until": (NOW - timedelta(hours=1)).isoformat()},
        {"limit": 0},
        {"limit": 5000},
        {"offset": -1},
        {"sort": "id; drop table"},
        {"order": "sideways"},
        {"q": "x" * 201},
    ],
)
def test_bad_query_is_422_with_reason(client: TestClient, params: dict[str, Any]) -> None:
    r = client.get(API, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_paging_and_sort(client: TestClient) -> None:
    r = client.get(API, params={"container_mode": "all", "sort": "last_seen", "order": "desc", "limit": 3})
    body = r.json()
    assert body["total"] == 10 and body["limit"] == 3
    assert [i["id"] for i in body["items"]] == ["h2", "a8", "a7"]
    page2 = client.get(API, params={"container_mode": "all", "limit": 3, "offset": 3}).json()["items"]
    assert [i["id"] for i in page2] == ["a5", "a3", "h1"]
    top = client.get(API, params={"sort": "count", "limit": 1}).json()["items"][0]
    assert top["id"] == "a1" and top["count"] == 7
    sev = client.get(API, params={"sort": "severity", "order": "asc", "limit": 1}).json()["items"][0]
    assert sev["rule"]["severity"] == "info"


def test_items_carry_attack_links(client: TestClient) -> None:
    item = client.get(API, params={"rule": "MT-INJECT-PTRACE", "limit": 1}).json()["items"][0]
    assert item["techniques"][0] == {
        "id": "T1055.008",
        "name": "Ptrace System Calls",
        "url": "https://attack.mitre.org/techniques/T1055/008/",
    }
    assert item["@timestamp"] and item["portainer"] is None


def test_grouped_view_counts(client: TestClient) -> None:
    body = client.get(API, params={"group": "true", "container_mode": "all", "sort": "count"}).json()
    assert body["grouped"] is True
    groups = {g["key"]: g for g in body["items"]}
    assert body["total"] == len(groups) == 8
    web_fileless = groups[f"MT-FILELESS-001|{CID_WEB}"]
    assert web_fileless["alerts"] == 2 and web_fileless["count"] == 8
    assert web_fileless["severity"] == "critical"
    assert web_fileless["first_seen"] < web_fileless["last_seen"]
    assert sum(web_fileless["sparkline"]) == 8
    assert web_fileless["techniques"][0]["id"] == "T1620"
    assert body["items"][0]["key"] == f"MT-FILELESS-001|{CID_WEB}"  # sorted by occurrences
    assert "MT-FILELESS-001|host:node-1" in groups  # host events group per host
    db = client.get(API, params={"group": "true", "container": "db"}).json()
    assert {g["key"] for g in db["items"]} == {
        f"MT-FILELESS-001|{CID_DB}",
        f"MT-INJECT-PTRACE|{CID_DB}",
        f"MT-LDPRELOAD-001|{CID_DB}",
    }
    assert next(g for g in db["items"] if g["rule"]["id"] == "MT-LDPRELOAD-001")["alerts"] == 2


# -- stats ---------------------------------------------------------------------------------------


def test_stats(client: TestClient) -> None:
    s = client.get(f"{API}/stats", params={"container_mode": "all"}).json()
    assert s["totals"]["alerts"] == 10 and s["totals"]["occurrences"] == 16
    assert s["totals"]["containers"] == 2 and s["totals"]["hosts"] == 2 and s["totals"]["rules"] == 4
    assert s["by_severity"]["critical"] == {"alerts": 4, "occurrences": 10}
    assert s["by_severity"]["info"] == {"alerts": 1, "occurrences": 1}
    tech = {t["id"]: t for t in s["by_technique"]}
    assert tech["T1620"]["occurrences"] == 10 and tech["T1620"]["name"] == "Reflective Code Loading"
    assert tech["T1055"]["alerts"] == 3
    assert s["by_technique"][0]["id"] == "T1620"
    tactics = {t["id"]: t for t in s["by_tactic"]}
    assert tactics["TA0005"]["name"] == "Defense Evasion" and tactics["TA0005"]["alerts"] == 7
    cont = {c["id"]: c for c in s["by_container"]}
    assert cont[CID_WEB]["alerts"] == 4 and cont[None]["alerts"] == 2
    assert sum(b["occurrences"] for b in s["timeline"]) == 16
    assert s["bucket_s"] == 300.0
    assert s["timeline"][0]["start"] < s["timeline"][-1]["start"]
    with_c = client.get(f"{API}/stats").json()
    assert with_c["totals"]["alerts"] == 8
    fine = client.get(
        f"{API}/stats", params={"bucket_s": 60, "severity": "critical", "container_mode": "all"}
    ).json()
    assert fine["bucket_s"] == 60 and sum(b["by_severity"]["critical"] for b in fine["timeline"]) == 10
    assert client.get(f"{API}/stats", params={"bucket_s": 0}).status_code == 422


def test_stats_empty(store: Store) -> None:
    with make_client(store) as c:
        s = c.get(f"{API}/stats").json()
    assert s["totals"]["alerts"] == 0 and s["timeline"] == [] and s["by_technique"] == []


# -- detail --------------------------------------------------------------------------------------


def test_detail(client: TestClient) -> None:
    d = client.get(f"{API}/a4").json()
    assert d["event"]["id"] == "a4" and len(d["event"]["evidence"]) == 2
    tree = d["process_tree"]
    assert [p["pid"] for p in tree] == [1, 4200, 4242] and tree[-1]["current"] is True
    assert tree[-1]["exe"] == "/usr/bin/gdb"
    assert [m["id"] for m in d["mitre"]] == ["T1055.008", "T1055"]
    assert d["mitre"][0]["url"].startswith("https://attack.mitre.org/techniques/T1055/008")
    assert "Privilege Escalation" in d["mitre"][0]["tactics"]
    r = client.get(f"{API}/nope")
    assert r.status_code == 404 and "nope" in r.json()["detail"]


# -- upsert in place -----------------------------------------------------------------------------


def test_grouped_alert_updates_in_place(client: TestClient, store: Store) -> None:
    store.upsert_alerts([make_alert("a2", count=5, minutes_ago=20)])
    assert client.get(f"{API}/a2").json()["event"]["count"] == 5
    store.upsert_alerts([make_alert("a2", count=3, minutes_ago=20)])  # late, older copy: ignored
    assert client.get(f"{API}/a2").json()["event"]["count"] == 5
    assert client.get(API, params={"container_mode": "all"}).json()["total"] == 10


# -- delete --------------------------------------------------------------------------------------


def test_delete_one(client: TestClient) -> None:
    assert client.delete(f"{API}/a3").json() == {"deleted": 1}
    assert client.get(f"{API}/a3").status_code == 404
    assert client.delete(f"{API}/a3").status_code == 404


def test_delete_by_ids_and_filter(client: TestClient) -> None:
    assert client.delete(API, params={"ids": ["a1", "a2", "zz"]}).json() == {"deleted": 2}
    assert client.delete(API, params={"severity": "info"}).json() == {"deleted": 1}
    assert client.delete(API, params={"container_mode": "without"}).json() == {"deleted": 2}
    assert client.get(API, params={"container_mode": "all"}).json()["total"] == 5
    r = client.delete(API)
    assert r.status_code == 422 and "all=true" in r.json()["detail"]
    assert client.delete(API, params={"technique": "bogus"}).status_code == 422
    assert client.delete(API, params={"all": "true"}).json() == {"deleted": 5}


# -- collector and patterns ---------------------------------------------------------------------


def test_collector_status(client: TestClient) -> None:
    s = client.get("/api/v1/collector/status").json()
    assert s["status"] == "degraded" and s["sensors_up"] == 1 and s["sensors_total"] == 2
    by_host = {x["host"]: x for x in s["sensors"]}
    assert by_host["node-1"]["status"] == "up" and by_host["node-2"]["status"] == "down"  # 120 s > 3 × 10 s
    n1 = by_host["node-1"]
    assert n1["events_per_s"] == 42.5 and n1["lost_total"] == 3 and n1["kernel"].startswith("6.18")
    assert "syscalls:sys_enter_memfd_create" in n1["programs"]
    assert s["shim"]["store_ok"] is True


def test_collector_status_without_sensors(store: Store) -> None:
    with make_client(store) as c:
        s = c.get("/api/v1/collector/status").json()
    assert s["status"] == "down" and s["sensors"] == []


def test_selftest_without_broker_is_503(client: TestClient) -> None:
    r = client.post(f"{API}/test")
    assert r.status_code == 503 and "Kafka" in r.json()["detail"]


def test_patterns_list(client: TestClient) -> None:
    r = client.get("/api/v1/patterns")
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == len(body["patterns"])
    if body["engine_available"]:
        assert body["patterns"], "the shipped library should list patterns"


def test_pattern_post_body_must_be_an_object(client: TestClient) -> None:
    r = client.post("/api/v1/patterns", json=["not", "an", "object"])
    assert r.status_code in (422, 503)
    r = client.post("/api/v1/patterns", content=b"{broken", headers={"Content-Type": "application/json"})
    assert r.status_code == 422


def test_openapi_published(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for p in (
        API,
        f"{API}/stats",
        f"{API}/test",
        f"{API}/{{event_id}}",
        "/api/v1/collector/status",
        "/api/v1/patterns",
    ):
        assert p in paths
    assert {"EventPage", "GroupItem", "Stats", "EventDetail", "CollectorStatus", "PatternList"} <= set(
        doc["components"]["schemas"]
    )
    params = {p["name"] for p in paths[API]["get"]["parameters"]}
    assert {
        "severity",
        "rule",
        "technique",
        "container",
        "container_mode",
        "since",
        "until",
        "q",
        "group",
    } <= params


def test_a_backtracking_regex_is_refused_with_422(client: TestClient) -> None:
    spec = {
        "id": "MT-CUSTOM-REDOS-001",
        "name": "redos",
        "description": "a regex that needs backtracking",
        "severity": "warning",
        "techniques": ["T1059"],
        "condition": {"syscall": "execve", "cmdline": {"regex": r"^(a)\1+(?=b)"}},
    }
    r = client.post("/api/v1/patterns", json=spec)
    if r.status_code == 503 and "engine" in r.text:
        pytest.skip("pattern engine not installed")
    assert r.status_code == 422 and "RE2" in r.text, r.text
