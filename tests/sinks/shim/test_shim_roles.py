"""An API that cannot be turned against detection: roles, built-in patterns, strict deletes,
rate limits and the audit trail, on the real app and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer
from fastapi.testclient import TestClient
from pydantic import ValidationError

from memtrail.core.kafka import consumer_config, ensure_topics
from memtrail.core.settings import Settings
from patterns.engine.api import load_engine
from sinks.shim.config import ShimSettings
from sinks.shim.limits import RateLimiter
from sinks.shim.publisher import Publisher, selftest_batch
from sinks.shim.store import Store
from tests.sinks.shim.shimkit import ADMIN_TOKEN, TOKEN, make_client, sample_alerts

API = "/api/v1/security-events"
READ = {"Authorization": f"Bearer {TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CUSTOM: dict[str, Any] = {
    "id": "MT-CUSTOM-ROLES-001",
    "name": "Exec from /tmp (custom)",
    "description": "A custom pattern added through the shim.",
    "severity": "warning",
    "techniques": ["T1105"],
    "tags": ["custom"],
    "condition": {"syscall": "execve", "args.filename": {"startswith": "/tmp/"}},
}


class CapturingPublisher:
    """Stands in for Kafka where only what would be published matters (the broker test below is real)."""

    def __init__(self) -> None:
        self.patterns: list[tuple[str, dict[str, Any], str]] = []
        self.selftests = 0

    def publish_pattern(self, pattern_id: str, spec: dict[str, Any], op: str = "upsert") -> None:
        self.patterns.append((pattern_id, spec, op))

    def publish_selftest(self) -> Any:
        self.selftests += 1
        return selftest_batch()

    def close(self) -> None:
        pass


@pytest.fixture
def pub() -> CapturingPublisher:
    return CapturingPublisher()


@pytest.fixture
def admin(store: Store, pub: CapturingPublisher) -> Any:
    store.upsert_alerts(sample_alerts())
    with make_client(store, publisher=pub) as c:
        yield c


def test_a_builtin_replaced_by_an_older_shim_is_shown_and_restored(
    admin: TestClient, store: Store, pub: CapturingPublisher
) -> None:
    hijack = {**CUSTOM, "id": "MT-FILELESS-001", "condition": {"syscall": "no_such_syscall"}}
    store.save_pattern("MT-FILELESS-001", hijack)  # what the old POST stored (and published)
    assert _listed(admin)["MT-FILELESS-001"]["overridden"] is True
    assert admin.post("/api/v1/patterns/MT-FILELESS-001/enable").status_code == 200
    (pid, spec, op), = pub.patterns  # fmt: skip
    assert (pid, op, spec["enabled"]) == ("MT-FILELESS-001", "upsert", True) and "sequence" in spec
    listed = _listed(admin)["MT-FILELESS-001"]
    assert listed["overridden"] is False and listed["disabled"] is False


def _listed(c: TestClient) -> dict[str, dict[str, Any]]:
    body = c.get("/api/v1/patterns", headers=READ).json()
    if not body["engine_available"]:
        pytest.skip("pattern engine not installed")
    return {p["id"]: p for p in body["patterns"]}


# -- roles ---------------------------------------------------------------------------------------


def test_the_read_token_reads_and_cannot_change_anything(admin: TestClient, pub: CapturingPublisher) -> None:
    assert admin.get(API, headers=READ).status_code == 200
    assert admin.get("/api/v1/patterns", headers=READ).status_code == 200
    assert admin.get("/api/v1/collector/status", headers=READ).status_code == 200
    refused = [
        admin.delete(f"{API}/a1", headers=READ),
        admin.delete(API, params={"all": "true"}, headers=READ),
        admin.post(f"{API}/test", headers=READ),
        admin.post("/api/v1/patterns", json=CUSTOM, headers=READ),
        admin.delete(f"/api/v1/patterns/{CUSTOM['id']}", headers=READ),
        admin.post("/api/v1/patterns/MT-FILELESS-001/disable", headers=READ),
        admin.get("/api/v1/audit", headers=READ),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]
    assert "admin credential" in refused[0].json()["detail"]
    assert admin.get(f"{API}/a1", headers=READ).status_code == 200  # nothing was deleted
    assert pub.patterns == [] and pub.selftests == 0
    # the admin token does both
    assert admin.get(API, headers=ADMIN).status_code == 200
    assert admin.delete(f"{API}/a1", headers=ADMIN).json() == {"deleted": 1}
    assert admin.post(f"{API}/test", headers={"X-API-Key": ADMIN_TOKEN}).status_code == 202


def test_openapi_documents_the_credentials_and_new_routes(admin: TestClient) -> None:
    doc = admin.get("/openapi.json").json()
    assert {"HTTPBearer", "APIKeyHeader"} <= set(doc["components"]["securitySchemes"])
    for path in ("/api/v1/audit", "/api/v1/patterns/{pattern_id}", "/api/v1/patterns/{pattern_id}/disable"):
        assert path in doc["paths"], path


def test_basic_auth_is_the_read_role(store: Store) -> None:
    import base64

    with make_client(store, basic_user="viewer", basic_password="viewer-password-long") as c:
        basic = {"Authorization": "Basic " + base64.b64encode(b"viewer:viewer-password-long").decode()}
        assert c.get(API, headers=basic).status_code == 200
        assert c.delete(API, params={"all": "true"}, headers=basic).status_code == 403


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"token": "same-token-for-both-1234", "admin_token": "same-token-for-both-1234"}, "must differ"),
        ({"token": "a-long-read-token-1234", "admin_token": "changeme"}, "admin_token is a default"),
        ({"token": "a-long-read-token-1234", "admin_token": "short"}, "admin_token is a default"),
    ],
)
def test_settings_refuse_a_shared_or_weak_admin_token(
    kwargs: dict[str, str], needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MEMTRAIL_SHIM_TOKEN", "MEMTRAIL_SHIM_ADMIN_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValidationError, match=needle):
        ShimSettings(**kwargs)  # type: ignore[arg-type]


def test_without_an_admin_token_nothing_can_be_changed(store: Store) -> None:
    with make_client(store, as_token=TOKEN, admin_token=None) as c:
        assert c.get(API).status_code == 200
        assert c.delete(API, params={"all": "true"}).status_code == 403


# -- built-in patterns ---------------------------------------------------------------------------


def test_a_builtin_pattern_cannot_be_replaced_or_deleted(admin: TestClient, pub: CapturingPublisher) -> None:
    before = _listed(admin)["MT-FILELESS-001"]
    hijack = {**CUSTOM, "id": "MT-FILELESS-001", "condition": {"syscall": "no_such_syscall"}}
    r = admin.post("/api/v1/patterns", json=hijack)
    assert r.status_code == 409 and "built-in" in r.json()["detail"] and "/disable" in r.json()["detail"]
    r = admin.delete("/api/v1/patterns/MT-FILELESS-001")
    assert r.status_code == 409
    assert pub.patterns == []
    assert _listed(admin)["MT-FILELESS-001"] == before
    denied = admin.get("/api/v1/audit", params={"action": "pattern.upsert"}).json()["items"]
    assert denied and denied[0]["outcome"] == "denied" and denied[0]["target"] == "MT-FILELESS-001"


def test_custom_patterns_are_added_and_deleted(admin: TestClient, pub: CapturingPublisher) -> None:
    assert admin.post("/api/v1/patterns", json=CUSTOM).status_code == 201, "engine needed"
    assert _listed(admin)[CUSTOM["id"]]["custom"] is True
    r = admin.delete(f"/api/v1/patterns/{CUSTOM['id']}")
    assert r.status_code == 200 and r.json()["action"] == "deleted"
    assert CUSTOM["id"] not in _listed(admin)
    assert [(p, op) for p, _, op in pub.patterns] == [(CUSTOM["id"], "upsert"), (CUSTOM["id"], "delete")]
    assert admin.delete(f"/api/v1/patterns/{CUSTOM['id']}").status_code == 404


def test_disabling_a_builtin_is_explicit_listed_and_audited(
    admin: TestClient, pub: CapturingPublisher
) -> None:
    assert _listed(admin)["MT-FILELESS-001"]["disabled"] is False
    r = admin.post("/api/v1/patterns/MT-FILELESS-001/disable")
    assert r.status_code == 200, r.text
    assert r.json() == {"id": "MT-FILELESS-001", "action": "disabled", "published": True}
    listed = _listed(admin)["MT-FILELESS-001"]
    assert listed["disabled"] is True and listed["custom"] is False
    (pid, spec, op), = pub.patterns  # fmt: skip
    assert (pid, op, spec["enabled"]) == ("MT-FILELESS-001", "upsert", False)

    # what the workers get really switches the built-in off, and only it
    engine = load_engine(Settings().patterns_dirs)
    events = [e.model_dump(mode="json") for e in selftest_batch().events]
    assert "MT-FILELESS-001" in {a.rule.id for a in engine.process_batch(events)}
    engine = load_engine(Settings().patterns_dirs)
    assert engine.upsert_pattern(spec) == []
    fired = {
        a.rule.id for a in engine.process_batch([e.model_dump(mode="json") for e in selftest_batch().events])
    }
    assert "MT-FILELESS-001" not in fired and "MT-FILELESS-002" in fired

    assert admin.post("/api/v1/patterns/MT-FILELESS-001/enable").json()["action"] == "enabled"
    assert _listed(admin)["MT-FILELESS-001"]["disabled"] is False
    assert pub.patterns[-1][1]["enabled"] is True
    actions = [(a["action"], a["target"], a["outcome"]) for a in admin.get("/api/v1/audit").json()["items"]]
    assert actions[:2] == [
        ("pattern.enable", "MT-FILELESS-001", "ok"),
        ("pattern.disable", "MT-FILELESS-001", "ok"),
    ]
    assert admin.post("/api/v1/patterns/MT-NO-SUCH-PATTERN/disable").status_code == 404


# -- strict deletes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"q": " "},
        {"q": "\x00"},
        {"q": "web\x00"},
        {"container": " "},
        {"host": ""},
        {"host": "\t"},
        {"rule": " "},
        {"ids": " "},
        {"ids": "\x00"},
    ],
)
def test_blank_or_nul_delete_filters_are_422_and_delete_nothing(
    admin: TestClient, params: dict[str, str]
) -> None:
    r = admin.delete(API, params=params)
    assert r.status_code == 422, (params, r.text)
    assert admin.get(API, params={"container_mode": "all"}).json()["total"] == 10


def test_nul_in_a_list_filter_is_422(admin: TestClient) -> None:
    assert admin.get(API, params={"q": "\x00"}).status_code == 422
    assert admin.get(API, params={"q": " "}).json()["total"] == admin.get(API).json()["total"]


def test_event_deletes_are_audited_with_their_criteria(
    admin: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="memtrail.shim.audit"):
        assert admin.delete(API, params={"severity": "info"}).json() == {"deleted": 1}
        assert admin.delete(f"{API}/a2").json() == {"deleted": 1}
    items = admin.get("/api/v1/audit", params={"action": "events.delete"}).json()["items"]
    assert [(i["target"], i["detail"]["deleted"]) for i in items] == [("a2", 1), ("filter", 1)]
    assert items[1]["detail"]["criteria"]["severity"] == ["info"]
    assert items[0]["actor"].startswith("admin-token:") and ADMIN_TOKEN not in str(items)
    lines = [orjson.loads(r.getMessage().removeprefix("audit ")) for r in caplog.records]
    assert [(x["action"], x["target"]) for x in lines] == [
        ("events.delete", "filter"),
        ("events.delete", "a2"),
    ]


# -- rate limits ---------------------------------------------------------------------------------


def test_selftest_and_pattern_changes_are_rate_limited(store: Store, pub: CapturingPublisher) -> None:
    defaults = ShimSettings(token=TOKEN)
    assert (defaults.selftest_per_min, defaults.changes_per_min) == (6, 30)
    # 2 a minute: a burst of 2, then one every 30 s (far longer than this test takes)
    with make_client(store, publisher=pub, selftest_per_min=2, changes_per_min=2) as c:
        codes = [c.post(f"{API}/test").status_code for _ in range(4)]
        assert codes == [202, 202, 429, 429]
        r = c.post(f"{API}/test")
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 30
        assert "retry in" in r.json()["detail"]
        changes = [c.post("/api/v1/patterns/MT-FILELESS-001/disable").status_code for _ in range(4)]
        assert changes == [200, 200, 429, 429]
        assert c.delete("/api/v1/patterns/MT-FILELESS-001").status_code == 429  # every change counts
    assert pub.selftests == 2 and len(pub.patterns) == 2


def test_limits_are_per_credential() -> None:
    now = [0.0]
    lim = RateLimiter(6, burst=2, clock=lambda: now[0])
    assert [lim.take("a"), lim.take("a")] == [0.0, 0.0]
    assert lim.take("a") == pytest.approx(10.0)  # one call per 10 s at 6/min
    assert lim.take("b") == 0.0  # another credential is not starved
    now[0] = 10.0
    assert lim.take("a") == 0.0


# -- on the real broker --------------------------------------------------------------------------


@pytest.mark.broker
def test_disable_reaches_the_patterns_topic(settings: Settings, tmp_path: Any) -> None:
    ensure_topics(settings)
    store = Store(str(tmp_path / "s.sqlite3"))
    with make_client(store, settings=settings, publisher=Publisher(settings)) as c:
        assert c.post("/api/v1/patterns", json={**CUSTOM, "id": "MT-FILELESS-002"}).status_code == 409
        assert c.post("/api/v1/patterns/MT-FILELESS-001/disable").status_code == 200
    consumer = Consumer(consumer_config(settings.kafka, f"roles-{tmp_path.name}"))
    consumer.subscribe([settings.topics.patterns])
    msgs = []
    try:
        for _ in range(100):
            m = consumer.poll(0.2)
            if m is not None and m.error() is None:
                msgs.append(m)
                break
    finally:
        consumer.close()
    assert len(msgs) == 1 and msgs[0].key() == b"MT-FILELESS-001"
    doc = orjson.loads(msgs[0].value())
    assert (
        doc["op"] == "upsert" and doc["spec"]["enabled"] is False and doc["spec"]["id"] == "MT-FILELESS-001"
    )
