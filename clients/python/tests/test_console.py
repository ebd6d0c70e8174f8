"""The examiner's web console (`/console/`, compiled into `twin serve`) driven by a real
headless Chromium: key, model picker, enrolment with job progress, subject verification
(genuine and skilled forgery), search, model card, and what the page must never do (keep
the key anywhere but in memory, load anything from outside the gateway).

Needs Debian's chromium and chromedriver (`clients/python/setup-browser.sh`) and selenium.
Without them the test is skipped, unless TWIN_CONSOLE_REQUIRED=1 makes that a failure.
A screenshot goes to $TWIN_TEST_ARTIFACTS/console.png (default: tests/artifacts/)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TWIN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TWIN_CHROMEDRIVER", "/usr/bin/chromedriver")
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def _unavailable(reason: str):
    if os.environ.get("TWIN_CONSOLE_REQUIRED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - depends on the environment
    webdriver = None


def _artifacts() -> Path:
    path = Path(os.environ.get("TWIN_TEST_ARTIFACTS") or HERE / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    if webdriver is None:
        _unavailable("selenium is not installed (pip install selenium)")
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not (Path(exe).exists() or shutil.which(exe)):
            _unavailable(f"{exe} not found: run clients/python/setup-browser.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--metrics-recording-only", "--no-default-browser-check"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never runs, nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _post(server, method: str, body: dict, key: str) -> dict:
    req = urllib.request.Request(
        f"{server.http_url}/v1/{method}", data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read() or b"{}")


def _wait(driver, predicate, timeout: float, what: str):
    """Waits for predicate(driver) to be truthy; on timeout says what it waited for and
    shows the page's error boxes."""

    def check(d):
        try:
            return predicate(d)
        except StaleElementReferenceException:
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)
    except Exception as exc:  # TimeoutException, with the page's own words
        errors = [
            f"{e.get_attribute('id')}: {e.text}"
            for e in driver.find_elements(By.CSS_SELECTOR, ".error, .error-banner")
            if e.is_displayed()
        ]
        _screenshot(driver, "console-failure.png")
        raise AssertionError(f"timed out waiting for {what}; errors shown: {errors}") from exc


def _screenshot(driver, name: str) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(1000, min(int(height) + 40, 6000)))
    path = _artifacts() / name
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def _by_id(driver, id_: str):
    return driver.find_element(By.ID, id_)


def _visible(driver, id_: str) -> bool:
    return _by_id(driver, id_).is_displayed()


def _tab(driver, name: str):
    _by_id(driver, f"tab-{name}").click()
    panel = "card" if name == "card" else name
    _wait(driver, lambda d: _visible(d, f"panel-{panel}"), 10, f"the {name} tab")


def _set_text(driver, id_: str, text: str):
    box = _by_id(driver, id_)
    box.clear()
    box.send_keys(text)


def _verify(driver, probe: Path):
    _by_id(driver, "verify-probe").send_keys(str(probe))
    _wait(driver, lambda d: _by_id(d, "verify-probe-name").text == probe.name, 10, "the probe to be chosen")
    _by_id(driver, "verify-submit").click()

    def done(d):
        if _visible(d, "verify-error"):
            return True
        if not _visible(d, "verify-result"):
            return False
        names = d.find_elements(By.CSS_SELECTOR, "#verify-probe-view .sample-name")
        return bool(names) and names[0].text == probe.name

    _wait(driver, done, 120, f"the verification of {probe.name}")
    assert not _visible(driver, "verify-error"), _by_id(driver, "verify-error").text
    decision = _by_id(driver, "verify-decision")
    assert decision.text in ("MATCH", "NO MATCH"), decision.text
    score = float(_by_id(driver, "verify-score").text)
    threshold = float(_by_id(driver, "verify-threshold").text)
    assert _by_id(driver, "verify-operating-point").text not in ("", "—")
    # The decision shown is the decision the numbers make.
    assert (decision.text == "MATCH") == (score >= threshold) or abs(score - threshold) < 1e-3
    return decision.text, score, threshold


def _check_references(driver, refs: list[Path]) -> list[float]:
    """One card per enrolled reference, each with its thumbnail; the compared ones (the
    operating point's N most recent, "references compared") with their score, highest
    first. Returns the compared scores."""
    cards = driver.find_elements(By.CSS_SELECTOR, "#verify-references .ref-card")
    assert len(cards) == len(refs), [c.text for c in cards]
    assert {c.find_element(By.CSS_SELECTOR, ".ref-source").text for c in cards} == {r.name for r in refs}
    scores, unscored = [], 0
    for card in cards:
        assert card.get_attribute("data-point-id")
        thumb = card.find_elements(By.CSS_SELECTOR, "img")
        assert thumb and thumb[0].get_attribute("src").startswith("data:image/png;base64,"), card.text
        assert driver.execute_script("return arguments[0].naturalWidth", thumb[0]) > 0, "thumbnail did not decode"
        text = card.find_element(By.CSS_SELECTOR, ".ref-score").text
        if text == "not compared":
            unscored += 1
        else:
            assert not unscored, "a scored reference after an unscored one"
            scores.append(float(text))
    count = _by_id(driver, "verify-reference-count").text.split(" of ")
    assert int(count[0]) == len(scores) >= 1, (count, scores)
    if unscored:
        assert int(count[1]) == len(refs)
    assert scores == sorted(scores, reverse=True)
    return scores


def test_console_end_to_end(twin_server, browser):
    driver = browser
    base = twin_server.http_url
    key = twin_server.keys["write"]
    images = Path(twin_server.images) / "w0001"
    subject = f"console-{uuid.uuid4().hex[:12]}"
    models = _post(twin_server, "list-models", {}, key)
    default_model = models["defaultModel"]

    driver.get(f"{base}/console/")
    _wait(driver, lambda d: d.find_elements(By.ID, "api-key"), 20, "the console to load")
    assert "twin" in driver.title

    # Without a key the gateway refuses, and the page says so plainly.
    _wait(driver, lambda d: _visible(d, "api-error"), 20, "the missing-key error")
    assert "UNAUTHENTICATED" in _by_id(driver, "api-error").text

    # ── Key and model picker ──
    _by_id(driver, "api-key").send_keys(key)
    _by_id(driver, "api-key-apply").click()
    _wait(
        driver,
        lambda d: not _visible(d, "api-error")
        and _by_id(d, "model-select").is_enabled()
        and len(Select(_by_id(d, "model-select")).options) == len(models["models"]),
        30,
        "the model list",
    )
    assert Select(_by_id(driver, "model-select")).first_selected_option.get_attribute("value") == default_model
    model = next(m for m in models["models"] if m["name"] == default_model)
    assert _by_id(driver, "model-kind").text == model.get("inputKind", "image")
    assert _by_id(driver, "model-metric").text == model["nativeMetric"].removeprefix("METRIC_").lower()
    assert _by_id(driver, "model-operating-point").text == model["defaultOperatingPoint"]
    float(_by_id(driver, "model-threshold").text)

    # ── Enrol four genuine signatures through the drop zone's file input ──
    _tab(driver, "enrol")
    refs = [images / f"w0001-G-{i:02d}.png" for i in range(1, 5)]
    for ref in refs:
        assert ref.exists(), ref
    _set_text(driver, "enrol-subject", subject)
    _by_id(driver, "enrol-files").send_keys("\n".join(str(r) for r in refs))
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#enrol-file-list li")) == 4, 10,
          "four files in the list")
    _by_id(driver, "enrol-submit").click()

    def jobs_finished(d):
        rows = d.find_elements(By.CSS_SELECTOR, "#enrol-jobs-body tr")
        statuses = [r.get_attribute("data-status") for r in rows]
        bad = [r.text for r in rows if r.get_attribute("data-status") in ("FAILED", "REJECTED", "NOT SENT")]
        assert not bad, f"enrolment failed: {bad}"
        return len(rows) == 4 and all(s in ("DONE", "ALREADY STORED") for s in statuses)

    _wait(driver, jobs_finished, 180, "the four enrolment jobs to be DONE")
    rows = driver.find_elements(By.CSS_SELECTOR, "#enrol-jobs-body tr")
    assert sorted(r.find_element(By.CSS_SELECTOR, ".job-file").text for r in rows) == sorted(r.name for r in refs)
    assert all(r.find_element(By.CSS_SELECTOR, ".job-id").text for r in rows)
    progress = _by_id(driver, "enrol-progress")
    assert float(progress.get_attribute("value")) == float(progress.get_attribute("max")) == 4.0
    assert "4 / 4" in _by_id(driver, "enrol-progress-text").text
    _screenshot(driver, "console-enrol.png")

    # ── Verify a fifth genuine signature against the subject ──
    _tab(driver, "verify")
    # An unknown subject: the API's error, shown in the page.
    _set_text(driver, "verify-subject", f"nobody-{uuid.uuid4().hex[:8]}")
    _by_id(driver, "verify-probe").send_keys(str(images / "w0001-G-05.png"))
    _by_id(driver, "verify-submit").click()
    _wait(driver, lambda d: _visible(d, "verify-error"), 60, "the unknown-subject error")
    assert "NOT_FOUND" in _by_id(driver, "verify-error").text

    _set_text(driver, "verify-subject", subject)
    assert Select(_by_id(driver, "verify-aggregation")).first_selected_option.get_attribute("value") == "AGGREGATION_BEST"
    genuine = _verify(driver, images / "w0001-G-05.png")
    compared = _check_references(driver, refs)
    # BEST: the aggregated score is the best compared reference's.
    assert abs(genuine[1] - compared[0]) < 1e-3, (genuine, compared)
    probe_img = driver.find_element(By.CSS_SELECTOR, "#verify-probe-view img")
    assert probe_img.get_attribute("src").startswith("data:image/png;base64,")
    shot = _screenshot(driver, "console.png")

    # ── A skilled forgery of the same writer ──
    forgery = _verify(driver, images / "w0001-F-01.png")
    _check_references(driver, refs)
    _screenshot(driver, "console-forgery.png")
    print(f"genuine: {genuine}, forgery: {forgery}")

    # ── Search with the genuine probe ──
    _tab(driver, "search")
    probe = images / "w0001-G-05.png"
    _by_id(driver, "search-probe").send_keys(str(probe))
    _wait(driver, lambda d: _by_id(d, "search-probe-name").text == probe.name, 10, "the search probe")
    # Other tests of the session enrol the same writer under their own subjects: look far.
    _set_text(driver, "search-topk", "100")
    _by_id(driver, "search-submit").click()
    _wait(driver, lambda d: _visible(d, "search-results") or _visible(d, "search-error"), 120, "search results")
    assert not _visible(driver, "search-error"), _by_id(driver, "search-error").text
    status = _by_id(driver, "search-status")
    hits = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#search-hits-body .hit-subject")]
    assert subject in hits, f"{subject} not among the hits {hits}; status: {status.text}"
    assert status.get_attribute("data-unknown") == "false"
    _screenshot(driver, "console-search.png")

    # ── Model card ──
    _tab(driver, "card")
    card_md = (REPO / "models" / "signature-v2" / "MODEL_CARD.md").read_text()
    title = next(line.lstrip("#").strip() for line in card_md.splitlines() if line.startswith("# "))
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#card-markdown h1")
          or _visible(d, "card-error"), 30, "the model card")
    assert not _visible(driver, "card-error"), _by_id(driver, "card-error").text
    if default_model == "signature-v2":
        assert _by_id(driver, "card-markdown").find_element(By.TAG_NAME, "h1").text == title
        assert driver.find_elements(By.CSS_SELECTOR, "#card-markdown table")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#card-operating-points-body tr")) == len(model["operatingPoints"])
    for plot in ("card-roc", "card-det"):
        if _visible(driver, f"{plot}-figure"):
            assert _by_id(driver, plot).get_attribute("src").startswith("data:image/svg+xml;base64,")
    _screenshot(driver, "console-card.png")

    # ── What the page must never do ──
    stored = driver.execute_script(
        "const all = (s) => Array.from({length: s.length}, (_, i) => s.key(i) + '=' + s.getItem(s.key(i)));"
        "return [all(localStorage), all(sessionStorage), document.cookie, location.href];"
    )
    assert not any(key in str(part) for part in stored), stored
    assert not any(key in c.get("value", "") for c in driver.get_cookies())
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat(performance.getEntriesByType('navigation').map(e => e.name))"
    )
    assert resources, "no resource timing entries"
    external = [r for r in resources if not r.startswith(base + "/") and not r.startswith("data:")]
    assert not external, f"the page loaded from outside the gateway: {external}"
    assert any(r.endswith("/console/console.js") for r in resources)
    # No script error, CSP violation or failed asset load (refused API calls are the API's business).
    logs = driver.get_log("browser")
    severe = [
        entry["message"] for entry in logs
        if entry["level"] == "SEVERE"
        and not ("/v1/" in entry["message"] and "Failed to load resource" in entry["message"])
    ]
    assert not severe, severe
    assert shot.exists()
