"""The page in real headless Chromium, served by the real shim (uvicorn) on a SQLite store.

Screenshots go to test-artifacts/screenshots/ (shim-*.png).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.paths import REPO
from tests.sinks.shim.shimkit import CID_WEB, TOKEN, chromium, heartbeat, sample_alerts, serve_page

pytestmark = pytest.mark.browser

SHOTS = REPO / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def shim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    alerts, beats = sample_alerts(), [heartbeat("node-1", age_s=2), heartbeat("node-2", age_s=120)]
    with serve_page(tmp_path_factory.mktemp("shim") / "page.sqlite3", alerts, beats) as url:
        yield url


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as d:
        yield d


def wait(d, cond, timeout: float = 10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.1).until(cond)


def rows(d, kind: str = "event-row") -> list:
    from selenium.webdriver.common.by import By

    return d.find_elements(By.CSS_SELECTOR, f'[data-testid="{kind}"]')


def by(d, css: str):
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, css)


@pytest.fixture
def page(driver, shim_url: str):
    """The page signed in through the URL fragment (as `memtrail up` prints it), table loaded."""
    driver.get("about:blank")  # a fresh document: from "/" a "#token=" URL would not reload the page
    driver.get(f"{shim_url}/#token={TOKEN}")
    wait(driver, lambda d: len(rows(d)) == 8)
    return driver


def test_table_cards_and_collector_status(page) -> None:
    assert "#token" not in page.current_url  # the token does not stay in the address bar
    status = wait(
        page,
        lambda d: (
            by(d, '[data-testid="collector-status"]').get_attribute("data-status") != "unknown"
            and by(d, '[data-testid="collector-status"]')
        ),
    )
    assert status.get_attribute("data-status") == "degraded"
    assert "1/2" in status.text
    assert by(page, '[data-testid="card-total"]').text.startswith("8")
    assert by(page, '[data-testid="card-critical"] .v').text == "9"  # a1 ×7 + a2 + a3
    assert by(page, '[data-testid="chart"] svg rect') is not None
    status.click()
    panel = by(page, '[data-testid="collector-panel"]')
    wait(page, lambda d: panel.is_displayed())
    assert len(rows(page, "sensor-row")) == 2 and "node-2" in panel.text and "down" in panel.text.lower()
    page.save_screenshot(str(SHOTS / "shim-events.png"))
    status.click()


def test_container_modes(page) -> None:
    by(page, '[data-mode="without"]').click()
    wait(page, lambda d: len(rows(d)) == 2)
    assert all(r.get_attribute("data-container") == "" for r in rows(page))
    assert "host" in rows(page)[0].text
    by(page, '[data-mode="all"]').click()
    wait(page, lambda d: len(rows(d)) == 10)
    assert by(page, '[data-testid="total"]').text == "10 events"
    by(page, '[data-mode="with"]').click()
    wait(page, lambda d: len(rows(d)) == 8)


def test_filter_by_severity(page) -> None:
    by(page, '.chip[data-sev="critical"]').click()
    wait(page, lambda d: len(rows(d)) == 3)
    assert {r.get_attribute("data-severity") for r in rows(page)} == {"critical"}
    by(page, '.chip[data-sev="warning"]').click()
    wait(page, lambda d: len(rows(d)) == 5)
    assert {r.get_attribute("data-severity") for r in rows(page)} == {"critical", "warning"}
    page.save_screenshot(str(SHOTS / "shim-severity-filter.png"))


def test_detail_modal(page) -> None:
    row = next(r for r in rows(page) if r.get_attribute("data-id") == "a4")
    row.find_element("css selector", ".rule-name").click()
    modal = by(page, '[data-testid="detail-modal"]')
    wait(page, lambda d: modal.is_displayed() and "process tree" in modal.text.lower())
    tree = page.find_elements("css selector", '[data-testid="tree-node"]')
    assert len(tree) == 3 and "/usr/bin/gdb" in tree[-1].text and "/sbin/init" in tree[0].text
    cards = page.find_elements("css selector", '[data-testid="mitre-card"]')
    assert [c.find_element("css selector", "a").text for c in cards] == ["T1055.008", "T1055"]
    link = cards[0].find_element("css selector", "a").get_attribute("href")
    assert link.startswith("https://attack.mitre.org/techniques/T1055/008")
    assert "memfd_create" in by(page, '[data-testid="evidence"]').text
    page.save_screenshot(str(SHOTS / "shim-detail.png"))
    by(page, '[data-testid="modal-close"]').click()
    wait(page, lambda d: not modal.is_displayed())


def test_grouping_counts_and_mitre_badges(page) -> None:
    by(page, '[data-testid="group-toggle"]').click()
    wait(page, lambda d: len(rows(d, "group-row")) == 6)
    counts = {}
    for r in rows(page, "group-row"):
        key = (
            r.find_element("css selector", ".rule-id").text,
            r.find_element("css selector", "td:nth-child(4) span").get_attribute("title"),
        )
        counts[key] = int(r.find_element("css selector", '[data-testid="group-count"]').text)
    assert counts[("MT-FILELESS-001", CID_WEB)] == 8
    badges = page.find_elements("css selector", '[data-testid="group-row"] [data-testid="mitre-badge"]')
    assert {b.text for b in badges} >= {"T1620", "T1055.008", "T1574.006"}
    hrefs = {b.text: b.get_attribute("href") for b in badges}
    assert hrefs["T1055.008"] == "https://attack.mitre.org/techniques/T1055/008/"
    assert page.find_elements("css selector", '[data-testid="sparkline"]')
    page.save_screenshot(str(SHOTS / "shim-grouped.png"))
    by(page, '[data-testid="group-toggle"]').click()
    wait(page, lambda d: len(rows(d)) == 8)


def test_login_prompt_without_token(driver, shim_url: str) -> None:
    driver.get(shim_url + "/")
    driver.execute_script("localStorage.clear()")
    driver.get(shim_url + "/")
    login = by(driver, '[data-testid="login"]')
    wait(driver, lambda d: login.is_displayed())
    by(driver, '[data-testid="login-token"]').send_keys("wrong-token-123456789")
    by(driver, '[data-testid="login-submit"]').click()
    wait(driver, lambda d: "Refused" in login.text)
    field = by(driver, '[data-testid="login-token"]')
    field.clear()
    field.send_keys(TOKEN)
    by(driver, '[data-testid="login-submit"]').click()
    wait(driver, lambda d: len(rows(d)) == 8 and not login.is_displayed())
