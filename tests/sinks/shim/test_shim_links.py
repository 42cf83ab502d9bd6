"""Links the page renders are http(s) only, whatever an alert carries (real shim, headless Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from schemas.alerts import Alert
from sinks.shim.mitre import details, safe_url
from tests.sinks.shim.shimkit import TOKEN, chromium, make_alert, serve_page

HOSTILE_URLS = [
    "javascript:window.__pwned=1",
    " JaVaScRiPt:window.__pwned=2",
    "data:text/html,<script>window.__pwned=3</script>",
    "vbscript:msgbox(1)",
]


def hostile_alert() -> Alert:
    doc = make_alert("evil-1", minutes_ago=1).to_json_dict()
    doc["threat"]["technique"] = {
        "id": ["T9991", "T9992", "T9993", "T9994"],  # not in the catalog: the alert's own links are used
        "name": ['<img src=x onerror="window.__pwned=9">'] * 4,
        "reference": HOSTILE_URLS,
    }
    doc["rule"]["name"] = '<a href="javascript:window.__pwned=5">click</a>'
    return Alert.model_validate(doc)


def test_safe_url_keeps_http_only() -> None:
    assert (
        safe_url("https://attack.mitre.org/techniques/T1620/") == "https://attack.mitre.org/techniques/T1620/"
    )
    assert safe_url("http://portainer:9000/#!/1/docker/containers/x")
    for bad in (*HOSTILE_URLS, "//evil.example/x", "https:", "", None, 5):
        assert safe_url(bad) is None, bad
    urls = [m["url"] for m in details(hostile_alert().to_json_dict()["threat"])]
    assert urls == [f"https://attack.mitre.org/techniques/T999{i}/" for i in range(1, 5)]


@pytest.fixture(scope="module")
def shim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_page(tmp_path_factory.mktemp("shim") / "links.sqlite3", [hostile_alert()]) as url:
        yield url


def _hrefs(d: Any) -> list[str]:
    return list(d.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"))


@pytest.mark.browser
def test_hostile_links_are_never_rendered(shim_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as d:
        d.get(f"{shim_url}/#token={TOKEN}")
        wait = WebDriverWait(d, 15, poll_frequency=0.1)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="event-row"]'))
        badges = d.find_elements(By.CSS_SELECTOR, '[data-testid="mitre-badge"]')
        assert {b.text for b in badges} >= {"T9991", "T9994"}
        d.find_element(By.CSS_SELECTOR, '[data-testid="event-row"] .rule-name').click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="mitre-card"]')) == 4)
        hrefs = _hrefs(d)
        assert hrefs and all(h.startswith(("http://", "https://")) for h in hrefs), hrefs
        cards = d.find_elements(By.CSS_SELECTOR, '[data-testid="mitre-card"] a')
        assert [c.get_attribute("href") for c in cards] == [
            f"https://attack.mitre.org/techniques/T999{i}/" for i in range(1, 5)
        ]
        for c in cards:  # a click on each card opens only attack.mitre.org (a new tab, no script here)
            c.click()
        d.switch_to.window(d.window_handles[0])
        assert d.execute_script("return window.__pwned === undefined")
        assert d.find_elements(By.CSS_SELECTOR, "img[onerror]") == []
