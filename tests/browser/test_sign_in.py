"""Browser: the page's sign-in (web/auth.js) in headless Chromium, against `python -m infra.local` and
its OIDC provider stand-in - no header shortcut here: the page gets its token by code + PKCE.

Needs Debian's chromium and chromium-driver (`bash infra/install_browser.sh`) and selenium; skipped
with the reason when either is missing. BROWSER_BASE_URL drives a runner that is already up.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_stack import call, start_local_stack

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))

if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
    pytest.skip(
        f"{CHROMIUM} or {CHROMEDRIVER} is missing: run `bash infra/install_browser.sh` "
        "(Debian chromium + chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

WAIT_SECONDS = 20
TEAM = "team-demo"
SESSION_KEY = "usage-ledger.auth.session"
# what the page's address was each time it was replaced (auth.js restores the asked-for route so),
# recorded from before any of the page's scripts run
RECORD_ADDRESSES = """
window.__addresses = [];
const replace = history.replaceState.bind(history);
history.replaceState = function (state, title, url) {
  replace(state, title, url);
  window.__addresses.push(location.pathname + location.search + location.hash);
};
"""


@pytest.fixture(scope="module")
def base_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    given = os.environ.get("BROWSER_BASE_URL")
    if given:
        return given.rstrip("/")
    return start_local_stack(request, tmp_path_factory)


@pytest.fixture(scope="module")
def issuer(base_url: str) -> str:
    return call(base_url, "GET", "/web/config.json").body["issuer"]


@pytest.fixture
def driver() -> Iterator[WebDriver]:
    """A fresh browser per test: nothing signed in, nothing in sessionStorage."""
    profile = tempfile.mkdtemp(prefix="browser-sign-in-profile-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--lang=en-US", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(60)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_ADDRESSES})
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: WebDriver, seconds: float = WAIT_SECONDS) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def until(driver: WebDriver, condition, what: str) -> None:
    try:
        wait(driver).until(condition)
    except TimeoutException:
        pytest.fail(f"{what}: not so after {WAIT_SECONDS}s at {driver.current_url}\n"
                    f"{driver.find_element(By.TAG_NAME, 'body').text[:2000]}")


def sign_in_at_provider(driver: WebDriver, issuer: str, user: str) -> None:
    """At the stand-in's authorization page: the user picks who they are (one button per demo user)."""
    until(driver, lambda d: d.current_url.startswith(issuer + "/oauth2/authorize"), "at the sign-in page")
    query = driver.current_url.split("?", 1)[1]
    assert "code_challenge_method=S256" in query and "code_challenge=" in query
    driver.find_element(By.CSS_SELECTOR, f'button[name="sub"][value="{user}"]').click()


def balances_shown(driver: WebDriver) -> None:
    until(driver, lambda d: d.find_element(By.ID, "balances").get_attribute("aria-busy") == "false"
          and d.find_elements(By.CSS_SELECTOR, "#balances .card"), "balance cards shown")


def session(driver: WebDriver) -> dict:
    return json.loads(driver.execute_script(f"return sessionStorage.getItem('{SESSION_KEY}') || 'null'") or "null")


def test_signing_in_through_the_provider_shows_the_balances(driver: WebDriver, base_url: str, issuer: str) -> None:
    driver.get(f"{base_url}/#team={TEAM}")
    until(driver, lambda d: d.current_url.startswith(issuer + "/oauth2/authorize"), "at the sign-in page")
    until(driver, lambda d: d.execute_script("return document.readyState") == "complete", "the sign-in page loaded")

    # the sign-in page is styled from the stylesheet we ship, from the provider itself (no CDN: works offline)
    loaded = driver.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    assert loaded and all(name.startswith(issuer + "/") for name in loaded), loaded
    assert issuer + "/_usage-ledger/sign-in.css" in loaded
    styled = driver.execute_script(
        "var b = document.querySelector('button[name=sub]'); var c = document.querySelector('.container');"
        "return [getComputedStyle(b).borderRadius, getComputedStyle(c).backgroundColor,"
        " getComputedStyle(c).borderTopStyle];")
    assert styled == ["7px", "rgb(255, 255, 255)", "solid"], styled

    sign_in_at_provider(driver, issuer, "alice")

    balances_shown(driver)
    assert driver.current_url.startswith(base_url + "/") and "code=" not in driver.current_url
    assert "Signed in as alice" in driver.find_element(By.ID, "auth-status").text
    # the page's token is one the API takes (the gateway verified it as the JWT authorizer would)
    token = session(driver)["idToken"]
    request = urllib.request.Request(f"{base_url}/v1/teams/{TEAM}/balances",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert json.load(response)["team_id"] == TEAM


def test_an_email_link_opened_signed_out_lands_on_its_view(driver: WebDriver, base_url: str, issuer: str) -> None:
    invoices = call(base_url, "GET", f"/v1/teams/{TEAM}/invoices", user="alice").body["items"]
    invoice_id = invoices[0]["invoice_id"] if invoices else "inv-from-an-email"
    route = f"#/teams/{TEAM}/invoices/{invoice_id}"  # shared/usage_ledger/domain/links.py: invoice_link
    driver.get(f"{base_url}/{route}")

    sign_in_at_provider(driver, issuer, "alice")

    until(driver, lambda d: session(d) is not None, "signed in")
    # back on the page, the address is the link's again before the page's own scripts start
    addresses = driver.execute_script("return window.__addresses")
    assert addresses and addresses[0] == "/" + route, addresses
    assert "Signed in as alice" in driver.find_element(By.ID, "auth-status").text


def test_an_expired_token_means_signing_in_again(driver: WebDriver, base_url: str, issuer: str) -> None:
    driver.get(f"{base_url}/#team={TEAM}")
    sign_in_at_provider(driver, issuer, "bob")
    balances_shown(driver)
    first = session(driver)["idToken"]

    driver.execute_script(f"""
        var s = JSON.parse(sessionStorage.getItem('{SESSION_KEY}'));
        s.expiresAt = Math.floor(Date.now() / 1000) - 1;
        sessionStorage.setItem('{SESSION_KEY}', JSON.stringify(s));""")
    driver.find_element(By.ID, "refresh-button").click()  # the next request finds the token expired

    sign_in_at_provider(driver, issuer, "bob")
    balances_shown(driver)
    assert session(driver)["idToken"] != first


def test_a_token_the_api_refuses_means_signing_in_again(driver: WebDriver, base_url: str, issuer: str) -> None:
    driver.get(f"{base_url}/#team={TEAM}")
    sign_in_at_provider(driver, issuer, "alice")
    balances_shown(driver)

    # a token signed by someone else (here: its signature broken), not fresh: the API answers 401
    driver.execute_script(f"""
        var s = JSON.parse(sessionStorage.getItem('{SESSION_KEY}'));
        s.idToken = s.idToken.slice(0, -6) + (s.idToken.slice(-6) === 'AAAAAA' ? 'BBBBBB' : 'AAAAAA');
        s.signedInAt = Math.floor(Date.now() / 1000) - 3600;
        sessionStorage.setItem('{SESSION_KEY}', JSON.stringify(s));""")
    driver.find_element(By.ID, "refresh-button").click()

    sign_in_at_provider(driver, issuer, "alice")
    balances_shown(driver)


def test_signing_out_ends_the_session(driver: WebDriver, base_url: str, issuer: str) -> None:
    driver.get(f"{base_url}/#team={TEAM}")
    sign_in_at_provider(driver, issuer, "hana")
    balances_shown(driver)

    driver.find_element(By.ID, "sign-out").click()
    # one step: through the provider's end_session and straight back, no "End Session" page to click
    until(driver, lambda d: d.current_url.startswith(base_url + "/") and d.find_elements(By.ID, "auth-panel"),
          "back on the page, signed out, without a stop at the provider")
    assert "signed out" in driver.find_element(By.ID, "auth-panel").text
    assert session(driver) is None
    driver.find_element(By.ID, "sign-in").click()
    sign_in_at_provider(driver, issuer, "hana")
    balances_shown(driver)
