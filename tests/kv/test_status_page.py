"""The status page in headless Chromium: it loads without console errors and shows the
leader and every member. Skipped when Chromium, chromedriver or selenium is missing.

Set ``PYKKA_RAFT_KV_SCREENSHOT=docs/kv-status.png`` to refresh the screenshot in the docs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from pykka_raft.kv.local import LocalCluster
from tests.kv.conftest import follower_of, leader_of, request

pytestmark = pytest.mark.timeout(180)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kv-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1100,640",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def waiting(browser: Any) -> Any:
    """A wait for the page: the script rebuilds the members' table on every refresh, so an
    element found a moment ago may be gone (stale) when it is read; the condition is then
    tried again, not failed."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        browser, 20, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )


def test_the_page_shows_the_leader_and_every_member(browser: Any, cluster_factory: Any) -> None:
    from selenium.webdriver.common.by import By

    cluster: LocalCluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    for i in range(12):
        request(cluster.url(leader), "PUT", f"/v1/kv/page-{i}", {"value": i})
    follower = follower_of(cluster)
    browser.get(cluster.url(follower) + "/")

    def shows_everyone(driver: Any) -> bool:
        rows = driver.find_elements(By.CSS_SELECTOR, "#members tr")
        return driver.find_element(By.ID, "leader").text == f"node {leader}" and sorted(
            r.get_attribute("data-node") for r in rows
        ) == [
            "1",
            "2",
            "3",
        ]

    waiting(browser).until(shows_everyone)

    def matched_and_lag(driver: Any) -> dict[str, tuple[str, str]] | None:
        # The "matched" and "lag" columns: the leader's view of every member.
        cells = {
            r.get_attribute("data-node"): [c.text for c in r.find_elements(By.TAG_NAME, "td")]
            for r in driver.find_elements(By.CSS_SELECTOR, "#members tr")
        }
        out = {node: (c[8], c[9]) for node, c in cells.items() if len(c) == 11}
        return out if len(out) == 3 and all(m.isdigit() for m, _ in out.values()) else None

    replication = waiting(browser).until(matched_and_lag)
    assert all(int(matched) >= 14 and lag.isdigit() for matched, lag in replication.values())
    rows = waiting(browser).until(
        lambda d: {
            r.get_attribute("data-node"): r.text
            for r in d.find_elements(By.CSS_SELECTOR, "#members tr")
        }
    )
    assert "leader" in rows[str(leader)]
    assert all("follower" in text for node, text in rows.items() if node != str(leader))
    assert browser.find_element(By.ID, "count").text == "3"
    assert browser.find_element(By.ID, "reachable").text == "3 / 3"
    changes = browser.find_element(By.ID, "changes").text
    assert f"node {leader} leads term" in changes
    assert not browser.find_element(By.ID, "error").is_displayed()
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    target = os.environ.get("PYKKA_RAFT_KV_SCREENSHOT")
    if target:
        browser.save_screenshot(target)


def test_the_page_reports_a_member_that_is_down(browser: Any, cluster_factory: Any) -> None:
    from selenium.webdriver.common.by import By

    cluster: LocalCluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    down = follower_of(cluster)
    cluster.stop_node(down)
    browser.get(cluster.url(leader) + "/")
    waiting(browser).until(lambda d: d.find_element(By.ID, "reachable").text == "2 / 3")
    row = f'#members tr[data-node="{down}"]'
    waiting(browser).until(lambda d: "unreachable" in d.find_element(By.CSS_SELECTOR, row).text)
