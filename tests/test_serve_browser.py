"""`cas serve` in a real browser: Debian's Chromium, headless, driven by selenium through chromedriver.

Each page is opened, domain -> model -> compare is clicked through, a file is
downloaded and its bytes checked, and a screenshot of each page is saved: into
$CAS_SERVE_SCREENSHOTS when set (docs/ uses these), else into the test's temp dir.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.helpers.serve import Served, build_demo_store, chrome, serve_store

# read at import: the autouse fixture in conftest.py clears CAS_* variables before each test
SHOTS = os.environ.get("CAS_SERVE_SCREENSHOTS")
# a click returns before the page it asks for has loaded: every step waits, generously, for what
# it asserts next (two busy cores can stretch a page load to seconds; issue 27)
WAIT = 30


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve_store(tmp_path_factory.mktemp("serve-browser"), build_demo_store)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[webdriver.Chrome, Path]]:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chrome(tmp_path / "profile", downloads)
    try:
        yield driver, downloads
    finally:
        driver.quit()


def _shot(driver: webdriver.Chrome, tmp_path: Path, name: str) -> None:
    out = Path(SHOTS or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    # the whole page, not just the window: resize to the document's height first
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 20, 600), 2400))
    path = out / f"serve-{name}.png"
    assert driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    driver.set_window_size(1280, 900)


def _on_page(driver: webdriver.Chrome, url: str | Callable[[str], bool]) -> None:
    """Wait until the browser shows a fully loaded page at `url` (or one whose URL passes the test)."""
    def arrived(d: webdriver.Chrome) -> bool:
        now = d.current_url
        if not (url(now) if callable(url) else now == url):
            return False
        return bool(d.execute_script("return document.readyState") == "complete")

    WebDriverWait(driver, WAIT, ignored_exceptions=(JavascriptException,)).until(
        arrived, message=f"page {url!r} did not load (at {driver.current_url})")


def _texts(driver: webdriver.Chrome, css: str, expected: list[str]) -> None:
    """Wait until the elements matching `css` carry exactly the `expected` texts."""
    seen: list[str] = []

    def match(d: webdriver.Chrome) -> bool:
        seen[:] = [e.text for e in d.find_elements(By.CSS_SELECTOR, css)]
        return seen == expected

    WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
        match, message=f"{css}: wanted {expected}, last saw {seen}")


def _find(driver: webdriver.Chrome, by: str, value: str) -> Any:
    """The element, once it is there (the page may still be arriving)."""
    return WebDriverWait(driver, WAIT, ignored_exceptions=(NoSuchElementException,)).until(
        lambda d: d.find_element(by, value), message=f"no element {by}={value!r}")


def _wait_for_file(path: Path, size: int, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size == size:
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"{path} did not arrive ({list(path.parent.iterdir())})")


def test_click_through_domain_model_compare(site: Served,  # noqa: PLR0915 - one user's click-through, step by step
                                           browser: tuple[webdriver.Chrome, Path], tmp_path: Path) -> None:
    server, _, facts = site
    driver, downloads = browser
    base = f"http://{server.host}:{server.port}"

    driver.get(base + "/")
    _on_page(driver, base + "/")
    _texts(driver, "#domains tbody tr a.domain", ["iris", "weights"])
    rows = driver.find_elements(By.CSS_SELECTOR, "#domains tbody tr")
    assert "v4" in rows[0].text and "staging" in rows[0].text
    _shot(driver, tmp_path, "domains")

    _find(driver, By.LINK_TEXT, "iris").click()
    _on_page(driver, base + "/d/iris")
    _texts(driver, "#models a.model", ["v4", "v3", "v2", "v1"])
    _shot(driver, tmp_path, "domain")

    # filter by state through the form
    Select(_find(driver, By.ID, "state-filter")).select_by_visible_text("production")
    _find(driver, By.CSS_SELECTOR, "form.filter button").click()
    _on_page(driver, lambda url: url.endswith("/d/iris?state=production"))
    _texts(driver, "#models a.model", ["v2"])
    driver.back()
    _on_page(driver, base + "/d/iris")

    _find(driver, By.LINK_TEXT, "v2").click()
    _on_page(driver, base + "/d/iris/m/v2")
    assert "DecisionTreeClassifier" in _find(driver, By.ID, "frameworks").text
    assert "yes: joblib unpickles" in driver.find_element(By.ID, "frameworks").text
    assert "production" in driver.find_element(By.CSS_SELECTOR, "p.meta").text
    meta = driver.find_element(By.ID, "metadata").text
    assert "accuracy" in meta and "loss" in meta and "<script>alert(1)</script>" in meta  # shown as text
    assert "load('iris', 'v2')" in driver.find_element(By.ID, "load-python").text
    _shot(driver, tmp_path, "model")

    _find(driver, By.LINK_TEXT, "notes.txt").click()
    assert _wait_for_file(downloads / "notes.txt", len(facts["notes"])) == facts["notes"]

    _find(driver, By.LINK_TEXT, "iris").click()
    _on_page(driver, base + "/d/iris")
    _find(driver, By.ID, "compare-link").click()
    _on_page(driver, base + "/d/iris/compare?a=v3&b=v4")
    assert "notes.txt" in _find(driver, By.ID, "file-changes").text
    changes = driver.find_element(By.ID, "meta-changes").text
    assert "accuracy" in changes and "depth" in changes
    assert "shares" in driver.find_element(By.ID, "shared").text
    _shot(driver, tmp_path, "compare")

    # compare two chosen rows from the domain table
    driver.get(base + "/d/iris")
    _on_page(driver, base + "/d/iris")
    _find(driver, By.CSS_SELECTOR, "input[name=a][value=v1]").click()
    _find(driver, By.CSS_SELECTOR, "input[name=b][value=v3]").click()
    _find(driver, By.ID, "compare-selected").click()
    _on_page(driver, lambda url: "/d/iris/compare?" in url)
    assert parse_qs(urlsplit(driver.current_url).query) == {"a": ["v1"], "b": ["v3"]}
    assert _find(driver, By.TAG_NAME, "h1").text == "Compare v1 → v3"

    driver.get(base + "/d/iris/log")
    _on_page(driver, base + "/d/iris/log")
    events = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#log tbody tr")]
    assert "state-set" in events[0] and "staging" in events[0] and "delete" in events[2]
    _shot(driver, tmp_path, "log")

    driver.get(base + "/d/iris/metrics")
    _on_page(driver, base + "/d/iris/metrics")
    _texts(driver, "figure.metric figcaption", ["accuracy", "depth", "eval.loss"])
    charts = driver.find_elements(By.CSS_SELECTOR, "figure.metric")
    assert len(charts[0].find_elements(By.TAG_NAME, "circle")) == 4
    _shot(driver, tmp_path, "metrics")


def test_large_download_in_browser(site: Served, browser: tuple[webdriver.Chrome, Path]) -> None:
    server, _, facts = site
    driver, downloads = browser
    url = f"http://{server.host}:{server.port}/d/weights/m/w1"
    driver.get(url)
    _on_page(driver, url)
    assert "no" in _find(driver, By.ID, "frameworks").text.split("file")[-1]  # a plain file runs no code
    _find(driver, By.LINK_TEXT, "weights.bin").click()
    assert _wait_for_file(downloads / "weights.bin", len(facts["big"])) == facts["big"]


def test_error_page_in_browser(site: Served, browser: tuple[webdriver.Chrome, Path]) -> None:
    server, _, _ = site
    driver, _ = browser
    url = f"http://{server.host}:{server.port}/d/iris/m/nope"
    driver.get(url)
    _on_page(driver, url)
    assert _find(driver, By.ID, "error-message").text == "model 'nope' not found in domain 'iris'"
