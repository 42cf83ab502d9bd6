"""Merged incidents in the shim: the store keeps the newest revision and finds any of its
patterns, the API returns them, and the page (real headless Chromium) shows every pattern
id and technique with hostile strings escaped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from schemas.alerts import Alert
from sinks.shim.filters import EventFilter, Page
from sinks.shim.store import Store
from tests.paths import REPO
from tests.sinks.shim.shimkit import TOKEN, chromium, make_alert, make_client, serve_page

HOSTILE = '<img src=x onerror="window.__pwned=1">'
SHOTS = REPO / "test-artifacts" / "screenshots"


def incident(
    alert_id: str = "inc1", revision: int = 3, n: int = 3, name2: str = "Process image is a memfd"
) -> Alert:
    """An incident of ``n`` patterns (MT-FILELESS-001 primary) at ``revision``."""
    base = make_alert(alert_id, "MT-FILELESS-001", minutes_ago=1)
    patterns: list[dict[str, Any]] = [
        {
            "id": "MT-FILELESS-001",
            "name": "Fileless execution from a memfd",
            "severity": "critical",
            "techniques": ["T1620", "T1027.011"],
            "alert_id": "x1",
        },
        {
            "id": "MT-FILELESS-002",
            "name": name2,
            "severity": "critical",
            "techniques": ["T1620"],
            "alert_id": "x2",
        },
        {
            "id": "MT-FILELESS-MEMFD-001",
            "name": "memfd_create by python3",
            "severity": "warning",
            "techniques": ["T1620", "T1027"],
            "alert_id": "x3",
        },
    ][:n]
    techs = list(dict.fromkeys(t for p in patterns for t in p["techniques"]))
    doc = base.to_json_dict()
    doc["threat"]["technique"] = {"id": techs}
    return Alert.model_validate({**doc, "patterns": patterns, "revision": revision})


def _patterns(store: Store, alert_id: str) -> list[str]:
    doc = store.get_alert(alert_id)
    assert doc is not None
    return [p["id"] for p in doc["patterns"]]


def test_store_keeps_the_newest_revision_and_filters_on_any_pattern(store: Store) -> None:
    store.upsert_alerts([incident(revision=1, n=1)])
    store.upsert_alerts([incident(revision=3, n=3)])  # two patterns joined at the same count
    assert _patterns(store, "inc1") == ["MT-FILELESS-001", "MT-FILELESS-002", "MT-FILELESS-MEMFD-001"]
    store.upsert_alerts([incident(revision=1, n=1)])  # a replayed older copy
    assert len(_patterns(store, "inc1")) == 3
    store.upsert_alerts([make_alert("other", "MT-INJECT-PTRACE")])
    for rule in ("MT-FILELESS-002", "MT-FILELESS-001", "MT-FILELESS-MEMFD-001"):
        _, docs = store.list_alerts(EventFilter(rule=(rule,)), Page())
        assert [d["id"] for d in docs] == ["inc1"], rule
    assert store.list_alerts(EventFilter(rule=("MT-FILELESS-00_",)), Page())[0] == 0  # LIKE escaped
    assert [d["id"] for d in store.list_alerts(EventFilter(q="memfd_create by"), Page())[1]] == ["inc1"]


def test_store_adds_the_new_columns_to_an_older_table(store: Store) -> None:
    store.upsert_alerts([make_alert("old")])
    for col in ("patterns", "revision"):
        store._conn.execute(f"ALTER TABLE shim_alerts DROP COLUMN {col}")
    again = Store(store.url)
    try:
        again.upsert_alerts([incident()])
        assert len(_patterns(again, "inc1")) == 3 and again.get_alert("old") is not None
    finally:
        again.close()


def test_api_returns_every_pattern_and_filters_by_a_secondary_one(store: Store) -> None:
    store.upsert_alerts([incident(), make_alert("other", "MT-INJECT-PTRACE")])
    client = make_client(store)
    r = client.get("/api/v1/security-events", params={"rule": "MT-FILELESS-002"})
    assert r.status_code == 200
    (item,) = r.json()["items"]
    assert [p["id"] for p in item["patterns"]] == [
        "MT-FILELESS-001",
        "MT-FILELESS-002",
        "MT-FILELESS-MEMFD-001",
    ]
    assert [t["id"] for t in item["techniques"]] == ["T1620", "T1027.011", "T1027"]
    d = client.get("/api/v1/security-events/inc1").json()
    assert d["event"]["revision"] == 3 and len(d["event"]["patterns"]) == 3
    groups = client.get("/api/v1/security-events", params={"group": "true"}).json()["items"]
    by_rule = {g["rule"]["id"]: g["patterns"] for g in groups}
    assert by_rule == {
        "MT-FILELESS-001": ["MT-FILELESS-001", "MT-FILELESS-002", "MT-FILELESS-MEMFD-001"],
        "MT-INJECT-PTRACE": ["MT-INJECT-PTRACE"],
    }


# -- the page ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    alerts = [incident(name2=HOSTILE), make_alert("single", "MT-INJECT-PTRACE", minutes_ago=2)]
    with serve_page(tmp_path_factory.mktemp("shim") / "incidents.sqlite3", alerts) as url:
        yield url


@pytest.mark.browser
def test_page_shows_every_pattern_and_technique_of_an_incident(page_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as d:
        d.get(f"{page_url}/#token={TOKEN}")
        wait = WebDriverWait(d, 10, poll_frequency=0.1)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="event-row"]')) == 2)
        row = d.find_element(By.CSS_SELECTOR, '[data-testid="event-row"][data-id="inc1"]')
        ids = [e.text for e in row.find_elements(By.CSS_SELECTOR, '[data-testid="pattern-id"]')]
        assert ids == ["MT-FILELESS-001", "MT-FILELESS-002", "MT-FILELESS-MEMFD-001"]
        badges = [b.text for b in row.find_elements(By.CSS_SELECTOR, '[data-testid="mitre-badge"]')]
        assert badges == ["T1620", "T1027.011", "T1027"]
        single = d.find_element(By.CSS_SELECTOR, '[data-testid="event-row"][data-id="single"]')
        assert [e.text for e in single.find_elements(By.CSS_SELECTOR, '[data-testid="pattern-id"]')] == [
            "MT-INJECT-PTRACE"
        ]
        d.find_element(By.CSS_SELECTOR, '[data-testid="group-toggle"]').click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="group-row"]')) == 2)
        grow = d.find_element(By.CSS_SELECTOR, '[data-testid="group-row"][data-id="inc1"]')
        assert [e.text for e in grow.find_elements(By.CSS_SELECTOR, '[data-testid="pattern-id"]')] == ids
        d.find_element(By.CSS_SELECTOR, '[data-testid="group-toggle"]').click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="event-row"]')) == 2)
        row = d.find_element(By.CSS_SELECTOR, '[data-testid="event-row"][data-id="inc1"]')
        row.find_element(By.CSS_SELECTOR, ".rule-name").click()
        modal = d.find_element(By.CSS_SELECTOR, '[data-testid="detail-modal"]')
        wait.until(
            lambda d: (
                modal.is_displayed() and d.find_elements(By.CSS_SELECTOR, '[data-testid="incident-pattern"]')
            )
        )
        items = d.find_elements(By.CSS_SELECTOR, '[data-testid="incident-pattern"]')
        assert [i.get_attribute("data-pattern") for i in items] == [
            "MT-FILELESS-001",
            "MT-FILELESS-002",
            "MT-FILELESS-MEMFD-001",
        ]
        assert HOSTILE in items[1].text  # shown as text...
        assert not d.find_elements(By.CSS_SELECTOR, "#modal-body img")  # ...never as markup
        assert d.execute_script("return window.__pwned") is None
        assert [b.text for b in items[0].find_elements(By.CSS_SELECTOR, '[data-testid="mitre-badge"]')] == [
            "T1620",
            "T1027.011",
        ]
        assert "critical" in items[0].text.lower() and "warning" in items[2].text.lower()
        d.save_screenshot(str(SHOTS / "shim-incident.png"))
