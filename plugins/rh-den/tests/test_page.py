"""The management page in a real headless Chromium (Debian's, driven by selenium through its
chromedriver) against a real store: alice logs in with her token, shares a resource with bob,
rolls a version back and makes a token; bob's own session sees what was shared and not alice's
private resource. Screenshots are kept under .artifacts/den/ at the repository's root."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from conftest import REPO, chromium
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ARTIFACTS = Path(os.environ.get("RH_TEST_ARTIFACTS", REPO / ".artifacts")) / "den"
FN = {"resource_type": "function", "qualname": "model"}


@pytest.fixture(scope="module")
def browser():
    binary, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--disable-dev-shm-usage"):
        options.add_argument(arg)
    service = Service(executable_path=driver)
    b = webdriver.Chrome(service=service, options=options)
    b.implicitly_wait(5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield b
    b.quit()  # stops the chromedriver this fixture started, and its browser


def go(b, by, value):
    """Click what leads to another page, and wait until that page replaced this one."""
    page = b.find_element(By.TAG_NAME, "html")
    b.find_element(by, value).click()

    def replaced(_):
        try:
            return page.tag_name is None  # reading it raises once the page is gone
        except WebDriverException:  # stale, or "does not belong to the document" while loading
            return True

    WebDriverWait(b, 10).until(replaced)
    WebDriverWait(b, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def log_in(b, url, token, shot=None):
    b.delete_all_cookies()
    b.get(url + "/")
    b.find_element(By.ID, "token").send_keys(token)
    if shot:
        b.save_screenshot(str(ARTIFACTS / shot))
    go(b, By.ID, "login")


def test_share_through_the_page(browser, sqlite_store):
    b, url = browser, sqlite_store.url
    alice, ta = sqlite_store.user("alice")
    bob, tb = sqlite_store.user("bob")
    api = sqlite_store.http(ta)
    for name in ("model", "private"):
        api.put(f"/v1/resources/{alice}/{name}", json={"config": FN})
    api.put(f"/v1/resources/{alice}/model", json={"config": {**FN, "v": 2}, "base_version": 1})

    log_in(b, url, ta, "login.png")
    assert b.find_element(By.TAG_NAME, "h1").text == f"Hello, {alice}"
    go(b, By.LINK_TEXT, f"@/{alice}")
    assert "@/" + alice + "/model" in b.find_element(By.ID, "resources").text
    go(b, By.LINK_TEXT, f"@/{alice}/model")
    assert b.find_element(By.ID, "version").text == "2"
    b.find_element(By.ID, "principals").send_keys(bob)
    go(b, By.ID, "share")
    assert b.find_element(By.ID, "note").text == f"shared with {bob}"
    assert bob in b.find_element(By.ID, "shares").text
    b.save_screenshot(str(ARTIFACTS / "resource.png"))
    # Roll back to version 1: saved as version 3.
    go(b, By.CSS_SELECTOR, "button.rollback")
    assert b.find_element(By.ID, "note").text == "version 1 saved as version 3"
    assert api.get(f"/v1/resources/{alice}/model").json()["config"] == FN
    # A token made on the page is shown once and works.
    go(b, By.LINK_TEXT, "Tokens")
    go(b, By.ID, "create-token")
    made = b.find_element(By.ID, "new-token").text
    assert httpx.get(url + "/v1/whoami", headers={"Authorization": f"Bearer {made}"}).json()[
        "user"] == alice

    log_in(b, url, tb)
    shared = b.find_element(By.ID, "shared").text
    assert f"@/{alice}/model" in shared and "private" not in shared
    b.save_screenshot(str(ARTIFACTS / "shared-with-bob.png"))
    b.get(f"{url}/ui/folder/{alice}")
    listed = b.find_element(By.ID, "resources").text
    assert f"@/{alice}/model" in listed and f"@/{alice}/private" not in listed
    b.get(f"{url}/ui/resource/{alice}/private")
    assert b.find_element(By.ID, "error").text == f"no resource @/{alice}/private that you can see"


def test_forms_need_the_session_csrf_and_a_revoked_token_ends_the_session(sqlite_store):
    name, token = sqlite_store.user("csrf")
    with httpx.Client(base_url=sqlite_store.url, follow_redirects=False) as page:
        page.get("/")  # the login form's own CSRF cookie
        csrf = page.cookies["rh_den_login"]
        assert page.post("/login", data={"token": token, "csrf": "forged"}).status_code == 403
        r = page.post("/login", data={"token": token, "csrf": csrf})
        assert r.status_code == 303 and "rh_den_session" in page.cookies
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        home = page.get("/ui")
        assert home.status_code == 200 and "frame-ancestors 'none'" in home.headers[
            "content-security-policy"]
        forged = page.post("/ui/tokens", data={"name": "evil", "csrf": "nope"})
        assert forged.status_code == 403 and "stale" in forged.text
        me = sqlite_store.http(token)
        token_id = me.get("/v1/tokens").json()[0]["id"]
        me.delete(f"/v1/tokens/{token_id}")
        assert page.get("/ui").status_code == 303  # the session ended with its token
