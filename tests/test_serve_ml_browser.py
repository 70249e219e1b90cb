"""`cas serve` as an ML registry, clicked through in real Chromium (issue 24).

Sort a 200-model domain by a metric, filter it, open a model, preview a CSV, a
PNG and a Markdown card, search across two domains, compare two models.  Every
step waits (WebDriverWait, generous timeouts) for what it then asserts: the
machine running the suite may be loaded.

Every page here is rendered by the server (no script): a click on a link or a
submit button loads a new document, and the click returns before it has.  An
element found right after such a click may still be the old page's (its ``h1``,
its rows) and goes stale when the new page arrives, so each such step goes
through ``_load``, which waits until the old document is gone and the new one
has loaded before anything is looked up; the waits re-find what they read on
every poll, from the driver, never through an element held across a load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers.serve import (
    ZOO,
    Served,
    build_ml_store,
    chrome,
    serve_store,
    start_server,
    stop_server,
    zoo_accuracy,
)

WAIT = 90


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve_store(tmp_path_factory.mktemp("serve-ml-browser"), build_ml_store)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    d = chrome(tmp_path / "profile", page_load_timeout=120)
    try:
        yield d
    finally:
        d.quit()


def _wait(d: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    # a condition that re-finds its elements from the driver is simply tried again if one
    # went stale between its find and its read (bounded by WAIT like any other miss)
    return WebDriverWait(d, WAIT, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))


def _load(d: webdriver.Chrome, act: Callable[[], object]) -> None:
    """Do ``act`` (a click on a link, a submit, back()), which loads another page, and wait until
    the page it leaves is gone and the new one has loaded: only then may the test look up
    elements, else it may get the old page's (stale a moment later)."""
    old = d.find_element(By.TAG_NAME, "html")
    act()
    _wait(d).until(ec.staleness_of(old), message="the page did not change")
    WebDriverWait(d, WAIT, poll_frequency=0.2, ignored_exceptions=(JavascriptException,)).until(
        lambda d: d.execute_script("return document.readyState") == "complete", message="the page did not load")


def _find(d: webdriver.Chrome, css: str) -> WebElement:
    el: WebElement = _wait(d).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))
    return el


def _click(d: webdriver.Chrome, css: str) -> None:
    """Click in the page (a checkbox, a <summary>): nothing is loaded."""
    el: WebElement = _wait(d).until(ec.element_to_be_clickable((By.CSS_SELECTOR, css)))
    el.click()


def _click_to(d: webdriver.Chrome, css: str) -> None:
    """Click a link or a submit button and wait for the page it loads."""
    el: WebElement = _wait(d).until(ec.element_to_be_clickable((By.CSS_SELECTOR, css)))
    _load(d, el.click)


def _text(d: webdriver.Chrome, css: str) -> str:
    """The text of the element at ``css``, found anew (for waits)."""
    return str(d.find_element(By.CSS_SELECTOR, css).text)


def _model_ids(d: webdriver.Chrome) -> list[str]:
    return [a.text for a in d.find_elements(By.CSS_SELECTOR, "#models a.model")]


def test_sort_filter_open_preview(site: Served, driver: webdriver.Chrome) -> None:
    server, _, _ = site
    base = f"http://{server.host}:{server.port}"
    driver.get(base + "/d/zoo")
    _wait(driver).until(lambda d: _model_ids(d)[:1] == ["z199"])
    # the metric columns are there; click "accuracy" to sort by it, best first
    _click_to(driver, 'th a.sort[data-key="accuracy"]')
    best = [f"z{i:03d}" for i in sorted(range(ZOO), key=lambda i: -zoo_accuracy(i))]
    _wait(driver).until(lambda d: _model_ids(d)[:5] == best[:5])
    cells = driver.find_elements(By.CSS_SELECTOR, '#models td.metric[data-key="accuracy"]')
    assert float(cells[0].text) == pytest.approx(zoo_accuracy(int(best[0][1:])), rel=1e-3)
    # clicking again sorts low to high
    _click_to(driver, 'th a.sort[data-key="accuracy"]')
    _wait(driver).until(lambda d: _model_ids(d)[:3] == best[::-1][:3])
    # filter: accuracy > 0.9 and the author Ana, still sorted
    box = _find(driver, "#filter")
    box.clear()
    box.send_keys("accuracy > 0.9")
    author = _find(driver, "#author-filter")
    author.clear()
    author.send_keys("ana")
    _click_to(driver, "#apply-filter")
    want = [m for m in best[::-1] if zoo_accuracy(int(m[1:])) > 0.9 and int(m[1:]) % 2 == 1]
    _wait(driver).until(lambda d: _model_ids(d) == want[:50])
    assert f"{len(want)} models" in _find(driver, "#count").text
    # open the first model
    _click_to(driver, "#models a.model")
    _wait(driver).until(lambda d: _text(d, "h1") == want[0])

    # a model with a card and files to look into
    driver.get(base + "/d/cards/m/c1")
    _wait(driver).until(lambda d: _text(d, "#card h1") == "Zoo classifier")
    card = _find(driver, "#card")
    assert card.find_element(By.TAG_NAME, "strong").text == "iris"
    assert '<script>alert("card")</script>' in card.text  # shown as text, never run
    assert card.find_elements(By.TAG_NAME, "script") == []
    # the CSV as a table
    _click_to(driver, 'a.view[href$="table.csv"]')
    _wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#csv tbody tr")) == 3)
    table = _find(driver, "#csv")
    assert [th.text for th in table.find_elements(By.CSS_SELECTOR, "th")] == ["name", "score"]
    assert table.find_elements(By.CSS_SELECTOR, "tbody tr")[2].text.startswith("<b>x</b>")
    _load(driver, driver.back)
    # the PNG, decoded by the browser
    _click_to(driver, 'a.view[href$="plot.png"]')
    _wait(driver).until(lambda d: d.execute_script(
        "const i = document.querySelector('#preview-image'); return i && i.complete && i.naturalWidth") == 4)
    _load(driver, driver.back)
    # the Markdown file itself
    _click_to(driver, 'a.view[href$="README.md"]')
    _wait(driver).until(lambda d: _text(d, "#preview article h1") == "Zoo classifier")


def test_search_and_compare(site: Served, driver: webdriver.Chrome) -> None:
    server, _, _ = site
    base = f"http://{server.host}:{server.port}"
    driver.get(base + "/")
    box = _find(driver, "#header-search")
    _load(driver, lambda: box.send_keys("accuracy>0.94\n"))
    _find(driver, "#results")

    def domains(d: webdriver.Chrome) -> set[str]:
        return {r.find_elements(By.TAG_NAME, "td")[0].text
                for r in d.find_elements(By.CSS_SELECTOR, "#results tbody tr") if r.find_elements(By.TAG_NAME, "a")}

    _wait(driver).until(lambda d: domains(d) == {"zoo", "cards"})
    _click_to(driver, '#results a.model[href="/d/cards/m/c2"]')
    _wait(driver).until(lambda d: _text(d, "h1") == "c2")

    # compare two models picked on the domain page
    driver.get(base + "/d/cards")
    _wait(driver).until(lambda d: _model_ids(d) == ["c2", "c1"])
    _click_to(driver, "#compare-selected")
    _wait(driver).until(lambda d: "Compare" in _text(d, "h1"))
    delta = _find(driver, '#meta-changes tr[data-key="accuracy"] .delta')
    assert delta.text.startswith("+0.02") and "better" in (delta.get_attribute("class") or "")
    # unchanged keys are there, folded away until opened
    same = _find(driver, "#meta-same")
    assert not same.find_element(By.CSS_SELECTOR, 'tr[data-key="eval.split"]').is_displayed()
    _click(driver, "#meta-same summary")
    _wait(driver).until(
        lambda d: d.find_element(By.CSS_SELECTOR, '#meta-same tr[data-key="eval.split"]').is_displayed())
    # changed files with the share of chunks they keep
    _find(driver, "#file-changes")

    # metrics: two keys drawn on one chart
    driver.get(base + "/d/zoo/metrics")
    _click(driver, '#pick-keys input[value="accuracy"]')
    _click(driver, '#pick-keys input[value="loss"]')
    _click_to(driver, "#draw-together")
    _wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#combined polyline")) == 2)
    combined = _find(driver, "#combined")
    assert combined.find_element(By.TAG_NAME, "figcaption").text == "accuracy, loss"
    width = driver.execute_script("return arguments[0].getBoundingClientRect().width",
                                  combined.find_element(By.TAG_NAME, "svg"))
    assert width > 900  # the page's width, not a thumbnail


def test_add_a_tag_and_a_note_then_find_them_by_search(tmp_path: Path, driver: webdriver.Chrome) -> None:
    """With --write: tag a model and note it from its page, then find it by the tag and by a word of the note."""
    import casstore

    store = casstore.open(tmp_path / "store")
    for mid in ("a1", "a2"):
        (tmp_path / f"{mid}.bin").write_bytes(mid.encode() * 50)
        store.commit_models("pets", model=str(tmp_path / f"{mid}.bin"), model_id=mid)
    server = start_server(str(tmp_path / "store"), "--write", env={"CAS_SERVE_TOKEN": "browser-t0ken"})
    try:
        base = f"http://{server.host}:{server.port}"
        driver.get(base + "/d/pets/m/a1?token=browser-t0ken")  # sets the token cookie
        _find(driver, "#tag-name").send_keys("hand-picked")
        _click_to(driver, 'form.tags button[value="tag"]')
        _wait(driver).until(
            lambda d: "hand-picked" in [t.text for t in d.find_elements(By.CSS_SELECTOR, "#notes .tag")])
        _find(driver, "#note-text").send_keys("<b>looks</b> fine on the walrus set")
        _click_to(driver, 'form.note button[value="note"]')
        note = _wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#notes pre.note-text"))[0]
        assert note.text == "<b>looks</b> fine on the walrus set"  # shown as text, not markup
        for query, want in (("tag:hand-picked", {"a1"}), ("walrus", {"a1"})):
            driver.get(base + "/")
            box = _find(driver, "#header-search")
            _load(driver, lambda box=box, query=query: box.send_keys(query + "\n"))
            _find(driver, "#results")
            _wait(driver).until(lambda d, want=want: want == {
                a.text for a in d.find_elements(By.CSS_SELECTOR, "#results a.model")})
    finally:
        stop_server(server)
    assert casstore.open(tmp_path / "store").get_annotations("pets", "a1")["tags"] == ["hand-picked"]
