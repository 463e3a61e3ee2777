"""The report of a real run opens in Chromium with no console error and no network
request, its charts render, and the keyboard reaches the contents first."""

from __future__ import annotations

from pathlib import Path

from tests.report.browser import CHROMIUM, FLAGS, needs_browser
from tests.report.conftest import Runs
from tutela.governance.report import write_report


@needs_browser
def test_report_renders_in_chromium_without_errors_or_requests(home: Runs, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    html = write_report([home.weak, home.strong], tmp_path / "report.html", pdf=False).html
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            charts = page.locator("svg.chart")
            assert charts.count() >= 8
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 100
                assert charts.nth(i).locator("polyline, rect, circle").count() > 0
            assert page.locator("#chart-privacy-utility polyline").count() >= 2
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Skip to the report"
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert requests == [html.as_uri()]
    assert (tmp_path / "report.png").stat().st_size > 0
