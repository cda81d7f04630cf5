"""The /admin dashboard in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium).

Skipped where Selenium, the browser or its driver is absent; a browser that is present but
does not start fails the test.
"""
from __future__ import annotations

import os
import shutil

import pytest

from blocklist import apikeys, importer, moderation, stats
from tests.test_admin import FTC_FILE, NUMBER
from tests.support import serve

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WAIT = 10  # seconds for a page to load after a submit


@pytest.fixture
def chromium():
    binary = next((path for path in map(shutil.which, BROWSERS) if path), None)
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("headless Chromium needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to see Content-Security-Policy reports
    # The driver path is given, so Selenium Manager never tries to download one.
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


def test_log_in_see_the_ftc_tag_shares_and_resolve_a_dispute(app, store, ftc_dir, chromium, tmp_path):
    importer.import_ftc(store, [os.path.join(ftc_dir, FTC_FILE)], dated_now=True)
    key = apikeys.create(store, "ops-browser", "admin")
    dispute = moderation.open_dispute(store, NUMBER, "my shop's number", "owner@example.com")["dispute_id"]
    top = stats.summary(store)["tag_shares"][0]
    wait = WebDriverWait(chromium, WAIT)

    with serve(app) as base:
        chromium.get(f"{base}/admin")
        chromium.find_element(By.ID, "key").send_keys(key)
        chromium.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()

        # The dashboard: the tag-share chart leads with the FTC data's top tag and its percentage.
        first = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "svg.shares g.tag-share")))
        texts = [t.get_attribute("textContent") for t in first.find_elements(By.TAG_NAME, "text")]
        assert first.get_attribute("data-tag") == top["tag"]
        assert texts == [f"{top['name_en']} {top['name_zh']}", f"{top['share'] * 100:.1f} %"]
        assert chromium.find_element(By.TAG_NAME, "header").value_of_css_property("display") == "flex"  # CSS ran
        cookies = chromium.get_cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("callmark_admin", True, "Strict")]
        assert key not in str(cookies) and key not in chromium.page_source
        chromium.save_screenshot(str(tmp_path / "admin.png"))
        assert not [e for e in chromium.get_log("browser") if "Content Security Policy" in e["message"]]

        # Resolve the open dispute through its form.
        form = chromium.find_element(By.CSS_SELECTOR, f"#dispute-{dispute} form.resolve")
        Select(form.find_element(By.NAME, "override")).select_by_value("allow")
        form.find_element(By.NAME, "note").send_keys("owner verified by phone")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        flash = wait.until(EC.presence_of_element_located((By.ID, "flash")))
        assert flash.text == f"Dispute {dispute} of {NUMBER} resolved (allow)."
        assert not chromium.find_elements(By.ID, f"dispute-{dispute}")
        assert "No open disputes." in chromium.find_element(By.ID, "disputes").text
        assert "owner verified by phone" in chromium.find_element(By.ID, "overrides").text

        # Log out: the login form again, and the session is gone.
        chromium.find_element(By.CSS_SELECTOR, "header form button[type=submit]").click()
        wait.until(EC.presence_of_element_located((By.ID, "login")))
        assert [c["name"] for c in chromium.get_cookies()] == ["callmark_admin_login"]  # the login form's own

    assert moderation.open_disputes(store) == []
    assert moderation.audit_log(store, NUMBER)[0]["by"] == "ops-browser"
