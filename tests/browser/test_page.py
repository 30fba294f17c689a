"""Browser: the Resource and API Usage page (web/) in headless Chromium against `python -m infra.local`.

Needs Debian's chromium and chromium-driver (`bash infra/install_browser.sh`) and the `selenium`
package; skipped with the reason when either is missing. Set BROWSER_BASE_URL to drive a runner
that is already up instead of starting one; SAVE_SCREENSHOT=1 writes docs/screenshot.png.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local_stack import call, start_local_stack

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))

if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
    pytest.skip(
        f"{CHROMIUM} or {CHROMEDRIVER} is missing: run `bash infra/install_browser.sh` (Debian chromium + chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshot.png"
WAIT_SECONDS = 20
TEAM = "team-demo"


# ------------------------------------------------------------------------------ HTTP


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def base_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    given = os.environ.get("BROWSER_BASE_URL")
    if given:
        return given.rstrip("/")
    return start_local_stack(request, tmp_path_factory)


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="browser-test-profile-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--lang=en-US",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ------------------------------------------------------------------------------ page helpers


def open_page(driver: WebDriver, base_url: str, user: str = "alice", team: str = TEAM) -> None:
    """The page as `user`, by the local runner's header shortcut (?local_user=: the page sends
    X-Local-User instead of signing in; tests/browser/test_sign_in.py signs in for real)."""
    driver.get("about:blank")  # a URL differing only in its #fragment would not reload the page
    driver.get(f"{base_url}/?local_user={user}#team={team}")
    # every section leaves its loading state, with data or an error
    wait(driver).until(
        lambda d: all(
            d.find_element(By.ID, section).get_attribute("aria-busy") == "false"
            for section in ("balances", "invoices", "alerts")
        )
    )


def wait(driver: WebDriver, seconds: float = WAIT_SECONDS) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def visible(driver: WebDriver, css: str, seconds: float = WAIT_SECONDS) -> WebElement:
    try:
        return wait(driver, seconds).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))
    except TimeoutException:
        pytest.fail(f"{css!r} did not appear; page shows:\n{driver.find_element(By.TAG_NAME, 'main').text}")


def console_errors(driver: WebDriver) -> list[str]:
    try:
        entries = driver.get_log("browser")
    except Exception:  # noqa: BLE001 - some drivers do not keep the log
        return []
    # failed fetches (4xx/5xx answers the page renders) are logged by Chromium too: only script errors count
    return [
        e["message"] for e in entries if e.get("level") == "SEVERE" and "Failed to load resource" not in e["message"]
    ]


def balances(base_url: str, user: str = "alice") -> dict[str, dict[str, Any]]:
    reply = call(base_url, "GET", f"/v1/teams/{TEAM}/balances", user=user)
    assert reply.status == 200, reply.body
    return {card["resource_id"]: card for card in reply.body["balances"]}


def asset_events(count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return [
        {
            "specversion": "1.0",
            "id": f"browser-{uuid.uuid4()}",
            "source": "urn:usage-ledger:browser-test",
            "type": "usage.recorded",
            "subject": TEAM,
            "time": now,
            "datacontenttype": "application/json",
            "data": {"resource_id": "asset", "quantity": 1, "user_id": "bob"},
        }
        for _ in range(count)
    ]


def close_first_payg_cycle(base_url: str) -> None:
    """Runs the close job at a time after the demo's open payg cycle (local dates) plus grace."""
    card = balances(base_url)["processing-minutes"]
    assert card["payg"], card
    cycle_end = date.fromisoformat(card["payg"]["cycle_end"])
    # the cycle ends at local midnight after cycle_end; +2 days clears any time zone and the grace period
    when = datetime(cycle_end.year, cycle_end.month, cycle_end.day, 12, tzinfo=UTC) + timedelta(days=2)
    reply = call(base_url, "POST", "/_local/run/CloseBillingCyclesFunction", body={"time": when.isoformat()})
    assert reply.status == 200, reply.body


# ------------------------------------------------------------------------------ tests


def test_cards_show_the_balance_after_new_usage(driver: WebDriver, base_url: str) -> None:
    before = balances(base_url)["asset"]
    posted = call(
        base_url,
        "POST",
        "/v1/events",
        operator=True,
        body=asset_events(3),
        content_type="application/cloudevents-batch+json",
    )
    assert posted.status == 202, posted.body
    assert call(base_url, "POST", "/_local/drain").status == 200
    after = balances(base_url)["asset"]
    assert after["available"] - after["shortfall_units"] == before["available"] - before["shortfall_units"] - 3

    open_page(driver, base_url)

    card = visible(driver, '.card[data-resource-id="asset"]')
    assert (
        card.find_element(By.CSS_SELECTOR, ".available-text").text
        == f"{after['available']} of {after['total']} available"
    )
    assert after["display_name"] in card.text
    assert card.find_element(By.CSS_SELECTOR, ".status").text.lower() == after["status"]
    assert f"{after['total_purchased']} assets" in card.text
    if after["refreshes_in_days"] is not None:
        assert f"Refreshes in {after['refreshes_in_days']} day" in card.text
    minutes = driver.find_element(By.CSS_SELECTOR, '.card[data-resource-id="processing-minutes"]')
    payg = balances(base_url)["processing-minutes"]["payg"]
    assert "$" in minutes.find_element(By.CSS_SELECTOR, ".payg__amount").text
    assert minutes.find_element(By.CSS_SELECTOR, ".payg__amount").text == f"${payg['amount'] / 100:,.2f}"
    assert console_errors(driver) == []


def test_banner_names_the_low_api_resource(driver: WebDriver, base_url: str) -> None:
    notices = call(base_url, "GET", f"/v1/teams/{TEAM}/notices", user="alice")
    assert notices.status == 200, notices.body
    open_page(driver, base_url)
    banner = driver.find_element(By.ID, "banner")
    if notices.body["banner"] is None:
        assert not banner.is_displayed()
        return
    visible(driver, "#banner")
    assert f"banner--{notices.body['banner']['level']}" in banner.get_attribute("class")
    assert notices.body["banner"]["message"] in banner.text
    assert "Processing minutes" in banner.text


def test_usage_chart_and_table_draw(driver: WebDriver, base_url: str) -> None:
    open_page(driver, base_url)

    chart = visible(driver, "#usage svg.chart__svg")
    bars = chart.find_elements(By.CSS_SELECTOR, "rect")
    assert bars, "the chart has no bars"
    rows = driver.find_elements(By.CSS_SELECTOR, "#usage table tbody tr")
    assert rows, "the usage table has no rows"
    assert (
        "Usage is in UTC and refreshed on a delay (up to 30 minutes)"
        in driver.find_element(By.ID, "usage-section").text
    )

    # group by user: the demo's usage is by alice and bob
    Select(driver.find_element(By.ID, "usage-group")).select_by_value("user")
    wait(driver).until(lambda d: "bob" in d.find_element(By.CSS_SELECTOR, "#usage").text)
    assert driver.find_elements(By.CSS_SELECTOR, "#usage svg.chart__svg rect")

    # month granularity still draws
    Select(driver.find_element(By.ID, "usage-granularity")).select_by_value("month")
    wait(driver).until(lambda d: "Month" in d.find_element(By.CSS_SELECTOR, "#usage").text)
    assert driver.find_elements(By.CSS_SELECTOR, "#usage svg.chart__svg rect")


def test_usage_error_is_readable(driver: WebDriver, base_url: str) -> None:
    open_page(driver, base_url)
    # `to` before `from`: the API answers 422 (problem+json), and the section says so
    today = datetime.now(UTC).date()
    driver.execute_script(
        "document.getElementById('usage-from').value = arguments[0];"
        "document.getElementById('usage-to').value = arguments[1];",
        today.isoformat(),
        (today - timedelta(days=3)).isoformat(),
    )
    driver.find_element(By.CSS_SELECTOR, "#usage-form button[type=submit]").click()

    error = visible(driver, "#usage .error")
    assert "Usage could not be loaded" in error.text
    assert "HTTP 422" in error.text


def test_an_invoice_opens(driver: WebDriver, base_url: str) -> None:
    invoices = call(base_url, "GET", f"/v1/teams/{TEAM}/invoices", user="alice")
    assert invoices.status == 200, invoices.body
    if not invoices.body["items"]:
        close_first_payg_cycle(base_url)
        invoices = call(base_url, "GET", f"/v1/teams/{TEAM}/invoices", user="alice")
        assert invoices.body["items"], "closing the demo's payg cycle issued no invoice"
    newest = invoices.body["items"][0]

    open_page(driver, base_url)
    row = visible(driver, f'#invoices tr[data-invoice-id="{newest["invoice_id"]}"]')
    assert f"${newest['total'] / 100:,.2f}" in row.text
    row.find_element(By.CSS_SELECTOR, ".invoice-open").click()

    frame = visible(driver, "#invoice-dialog iframe.invoice-frame")
    assert frame.get_attribute("sandbox") == ""
    driver.switch_to.frame(frame)
    try:
        wait(driver).until(lambda d: d.find_element(By.TAG_NAME, "body").text.strip())
        text = driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.switch_to.default_content()
    assert f"{newest['total'] / 100:,.2f}" in text, text
    driver.find_element(By.ID, "invoice-close").click()
    wait(driver).until(lambda d: not d.find_element(By.ID, "invoice-dialog").is_displayed())


def _fill_alert(driver: WebDriver, name: str, windows: set[str], resources: set[str], recipients: set[str]) -> None:
    field = driver.find_element(By.ID, "alert-name")
    field.clear()
    field.send_keys(name)
    for kind, wanted in (("window", windows), ("resource", resources), ("recipient", recipients)):
        boxes = driver.find_elements(By.CSS_SELECTOR, f"#alert-form input[name={kind}]")
        assert boxes, f"no {kind} checkboxes"
        for box in boxes:
            if box.is_selected() != (box.get_attribute("value") in wanted):
                box.click()
    driver.find_element(By.ID, "alert-submit").click()


def test_alert_is_created_and_a_duplicate_refused(driver: WebDriver, base_url: str) -> None:
    for alert in call(base_url, "GET", f"/v1/teams/{TEAM}/alerts?limit=100", user="alice").body["items"]:
        assert call(base_url, "DELETE", f"/v1/teams/{TEAM}/alerts/{alert['alert_id']}", user="alice").status == 204
    open_page(driver, base_url)
    visible(driver, '#alert-resources input[value="asset"]')
    name = f"Assets running out {uuid.uuid4().hex[:6]}"

    _fill_alert(driver, name, {"10", "5"}, {"asset", "processing-minutes"}, {"alice", "bob"})
    message = visible(driver, "#alert-form-message .success")
    assert name in message.text
    wait(driver).until(lambda d: name in d.find_element(By.ID, "alerts").text)

    saved = call(base_url, "GET", f"/v1/teams/{TEAM}/alerts", user="alice")
    created = next(item for item in saved.body["items"] if item["name"] == name)

    # the same configuration under another name, in another order, is refused with a readable message
    _fill_alert(driver, "Same again", {"5", "10"}, {"processing-minutes", "asset"}, {"bob", "alice"})
    error = visible(driver, "#alert-form-message .error")
    assert "already exists" in error.text
    assert "HTTP 409" in error.text
    duplicate = call(
        base_url,
        "POST",
        f"/v1/teams/{TEAM}/alerts",
        user="alice",
        body={
            "name": "Same again",
            "windows_days": [5, 10],
            "resource_ids": ["asset", "processing-minutes"],
            "recipient_user_ids": ["alice", "bob"],
        },
    )
    assert duplicate.status == 409, duplicate.body
    if isinstance(duplicate.body, dict) and duplicate.body.get("detail"):
        assert duplicate.body["detail"] in error.text
    assert driver.find_element(By.ID, "alerts").text.count("Same again") == 0

    # a different alert can be deleted from the list (the first stays, for the screenshot)
    other = f"Minutes only {uuid.uuid4().hex[:6]}"
    _fill_alert(driver, other, {"5"}, {"processing-minutes"}, {"alice"})
    wait(driver).until(lambda d: other in d.find_element(By.ID, "alerts").text)
    item = driver.find_element(By.XPATH, f'//li[contains(@class,"alert-item")][.//p[text()="{other}"]]')
    item.find_element(By.CSS_SELECTOR, ".alert-delete").click()
    wait(driver).until(lambda d: other not in d.find_element(By.ID, "alerts").text)
    assert name in driver.find_element(By.ID, "alerts").text
    ids = {a["alert_id"] for a in call(base_url, "GET", f"/v1/teams/{TEAM}/alerts", user="alice").body["items"]}
    assert created["alert_id"] in ids


def test_the_form_checks_empty_choices(driver: WebDriver, base_url: str) -> None:
    open_page(driver, base_url)
    visible(driver, '#alert-resources input[value="asset"]')
    _fill_alert(driver, "Nothing chosen", set(), set(), {"alice"})
    error = visible(driver, "#alert-form-message .error")
    assert "windows_days" in error.text and "resource_ids" in error.text


def test_a_member_without_a_role_sees_readable_errors(driver: WebDriver, base_url: str) -> None:
    open_page(driver, base_url, user="carl")

    for section in ("balances", "invoices", "alerts"):
        error = visible(driver, f"#{section} .error")
        assert "could not be loaded" in error.text
        assert "HTTP 403" in error.text
    assert "Signed in as carl" in driver.find_element(By.ID, "auth-status").text


def test_hub_admin_sees_api_resources_only(driver: WebDriver, base_url: str) -> None:
    open_page(driver, base_url, user="hana")
    wait(driver).until(lambda d: d.find_element(By.ID, "balances").get_attribute("aria-busy") == "false")
    kinds = {
        card.find_element(By.CSS_SELECTOR, ".kind").text for card in driver.find_elements(By.CSS_SELECTOR, ".card")
    }
    assert kinds == {"API"}


def test_unknown_team_is_not_a_blank_page(driver: WebDriver, base_url: str) -> None:
    open_page(driver, base_url, team="no-such-team")

    error = visible(driver, "#balances .error")
    assert "HTTP 404" in error.text
    assert driver.find_element(By.ID, "team-input").get_attribute("value") == "no-such-team"


def test_save_screenshot(driver: WebDriver, base_url: str) -> None:
    """Writes docs/screenshot.png (the page with demo data) when SAVE_SCREENSHOT=1."""
    if os.environ.get("SAVE_SCREENSHOT") != "1":
        pytest.skip("set SAVE_SCREENSHOT=1 to write docs/screenshot.png")
    open_page(driver, base_url)
    visible(driver, "#usage svg.chart__svg")
    for details in driver.find_elements(By.CSS_SELECTOR, ".card details"):
        driver.execute_script("arguments[0].open = true", details)
    for _ in range(4):  # the window includes some browser chrome: grow until the page fits
        inner, height = driver.execute_script("return [window.innerHeight, document.documentElement.scrollHeight]")
        if inner >= height:
            break
        driver.set_window_size(1400, min(driver.get_window_size()["height"] + height - inner, 5000))
        time.sleep(0.2)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOT))
    driver.set_window_size(1400, 1000)
    assert SCREENSHOT.stat().st_size > 10_000
