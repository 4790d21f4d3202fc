"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright.

The page loads with no console errors, the front is drawn, a click on a point opens the plan view
with its technique map and both sample grids, the page redraws when a new evaluation lands, and the
static report does the same from a file. Screenshots go to test-artefacts/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashboard_helpers import add_manual_point, copy_store, serve_in_thread

# Headless, and nothing that reaches out to the network (this machine's network is closed).
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    import setup_check
    from playwright.sync_api import sync_playwright

    executable = setup_check.chromium_path()
    if executable is None:  # the conftest stops the run first when chromium is missing
        pytest.fail(setup_check.advice(["chromium"]), pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        yield browser
        browser.close()


class Page:
    """A browser tab that records every console error and uncaught exception."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))

    def trace_index(self, prefix: str) -> int:
        names = self.page.evaluate("() => document.getElementById('front-plot').data.map(t => t.name)")
        return next(k for k, name in enumerate(names) if name.startswith(prefix))

    def click_point(self, trace: int) -> str:
        """Click the first point of a front-plot trace; the plan hash it carries."""
        points = self.page.locator(f"#front-plot .scatterlayer .trace:nth-of-type({trace + 1}) .point")
        box = points.first.bounding_box()
        assert box is not None, "the point is not drawn"
        self.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        script = f"() => document.getElementById('front-plot').data[{trace}].customdata[0][0]"
        return self.page.evaluate(script)

    def plan_opened(self, plan_hash: str) -> None:
        self.page.wait_for_selector(f"#plan-panel article.plan[data-plan='{plan_hash}']", timeout=15_000)
        self.page.wait_for_selector("#plan-panel .technique-plot .main-svg", timeout=15_000)
        self.page.wait_for_function(  # both grids, this plan's and the full model's, decoded
            "() => [...document.querySelectorAll('#plan-panel .samples img')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length === 2", timeout=15_000)


def _front_drawn(tab: Page) -> None:
    tab.page.wait_for_selector("#front-plot .scatterlayer .point", timeout=30_000)
    tab.page.wait_for_selector("#hv-plot .scatterlayer .point", timeout=30_000)


def test_study_page_front_and_plan_view(browser, served, artefacts) -> None:
    tab = Page(browser)
    tab.page.goto(f"{served.base}/")
    tab.page.click("text=dash-dit")
    _front_drawn(tab)
    greedy_front = tab.trace_index("greedy: front")
    plan_hash = tab.click_point(greedy_front)
    tab.plan_opened(plan_hash)
    assert tab.page.locator("#plan-panel .numbers").inner_text().count("GMACs per image") == 1
    assert tab.page.url.endswith(f"#plan={plan_hash}")
    download = tab.page.locator("#plan-panel a.download")
    assert download.get_attribute("href").endswith(f"/plans/{plan_hash}/plan.json")
    tab.page.screenshot(path=str(artefacts / "dashboard-study.png"), full_page=True)
    assert tab.errors == []


def test_plan_link_opens_the_plan(browser, served) -> None:
    """A shared link with #plan=<hash> opens the plan at once; the U-Net shows its timeline."""
    tab = Page(browser)
    _, view = served.json("/api/studies/dash-unet")
    plan_hash = view["methods"]["deepcache-grid"]["points"][0]["plan_hash"]
    tab.page.goto(f"{served.base}/studies/dash-unet#plan={plan_hash}")
    _front_drawn(tab)
    tab.plan_opened(plan_hash)
    assert "DeepCache schedule" in tab.page.locator("#plan-panel .technique-plot").inner_text()
    assert tab.errors == []


def test_page_redraws_while_a_search_writes(browser, searched, tmp_path) -> None:
    url = copy_store(searched.url, tmp_path)
    server = serve_in_thread(url, refresh_s=0.5)
    served = next(server)
    try:
        tab = Page(browser)
        tab.page.goto(f"{served.base}/studies/dash-unet")
        _front_drawn(tab)
        plan_hash = add_manual_point(url, "dash-unet")
        tab.page.wait_for_function(
            "() => document.getElementById('front-plot').data.some(t => t.name.startsWith('manual'))",
            timeout=15_000)
        tab.page.click(f"#summary a.plan-link[data-plan='{plan_hash}']")
        tab.page.wait_for_selector(f"#plan-panel article.plan[data-plan='{plan_hash}']", timeout=15_000)
        assert tab.errors == []
    finally:
        server.close()


def test_static_report(browser, searched, tmp_path, artefacts) -> None:
    from dashboards.report import write_report
    from storage import Store

    with Store.open(searched.url, create=False) as store:
        path = write_report(store, "dash-dit", tmp_path / "report.html").path
    tab = Page(browser)
    tab.page.goto(path.as_uri())
    _front_drawn(tab)
    plan_hash = tab.click_point(tab.trace_index("optuna: front"))
    tab.plan_opened(plan_hash)
    href = tab.page.locator("#plan-panel a.download").get_attribute("href")
    assert href.startswith("data:application/json;base64,")
    tab.page.screenshot(path=str(artefacts / "dashboard-report.png"), full_page=True)
    assert tab.errors == []
