"""The dashboard in Chromium (Playwright, Debian's chromium) against a live TLS coordinator:
each role signs in and sees only its views, a running study's round counter advances
without a reload, and nothing logs a console error. Screenshots are kept in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.report.browser import CHROMIUM, FLAGS, needs_browser
from tests.server.conftest import Live
from tests.server.test_dashboard import _join_and_open_round_one, _submit_round


def _sign_in(browser: Any, live: Live, role: str, errors: list[str]) -> Any:
    # the deployment's own CA signed the coordinator's certificate; the browser is not
    # given it, so this test context accepts it (the API tests check TLS itself)
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(live.url + "/dashboard")
    page.fill("#token", live.tokens[role])
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector(f"#who:has-text('({role})')")
    return page


@needs_browser
def test_roles_views_and_a_live_round_counter_in_chromium(live: Live, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    co = live.server.coordinator
    assert co is not None
    study = live.new_study()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            scientist = _sign_in(browser, live, "data-scientist", errors)
            loads: list[str] = []
            scientist.on("load", lambda _page: loads.append("load"))
            assert scientist.is_disabled("button[data-view=sites]")
            assert scientist.is_disabled("button[data-view=audit]")
            assert scientist.is_disabled("button[data-view=compliance]")
            assert scientist.is_enabled("button[data-view=privacy]")
            counter = f"#round-{study}"
            scientist.wait_for_selector(counter)
            with live.client("data-scientist") as c:
                assert c.post(f"/v1/admin/studies/{study}/start").status_code == 200
            _join_and_open_round_one(co, study)
            scientist.wait_for_function(
                "id => document.getElementById('state-' + id)?.textContent === 'running'",
                arg=study,
                timeout=30_000,
            )
            _submit_round(co, study, 1)
            scientist.wait_for_function(
                "id => document.getElementById('round-' + id)?.textContent === '1'",
                arg=study,
                timeout=30_000,
            )
            assert loads == []  # pushed, not reloaded
            scientist.screenshot(path=str(tmp_path / "studies-data-scientist.png"), full_page=True)
            assert errors == []
            refused = scientist.evaluate(
                "async () => (await fetch('/v1/dashboard/sites', {headers: {Authorization: "
                "'Bearer ' + sessionStorage.getItem('tutela.dashboard.token')}})).status"
            )
            assert refused == 403
            assert len(errors) == 1 and "403" in errors[0]  # Chromium logs the refusal
            errors.clear()

            auditor = _sign_in(browser, live, "auditor", errors)
            assert auditor.is_disabled("button[data-view=sites]")
            auditor.click("button[data-view=audit]")
            auditor.fill("#audit-q", study)
            auditor.click("#audit-form button[type=submit]")
            auditor.wait_for_selector("#audit-count:has-text('matching records')")
            assert int(auditor.inner_text("#audit-count").split()[0]) >= 1
            auditor.screenshot(path=str(tmp_path / "audit-auditor.png"), full_page=True)
            auditor.click("button[data-view=privacy]")
            auditor.wait_for_selector("#privacy-body table")
            auditor.screenshot(path=str(tmp_path / "privacy-auditor.png"), full_page=True)

            admin = _sign_in(browser, live, "admin", errors)
            admin.click("button[data-view=sites]")
            admin.wait_for_selector("#sites-body table")
            assert "hospital-1" in admin.inner_text("#sites-body")
            admin.screenshot(path=str(tmp_path / "sites-admin.png"), full_page=True)
            admin.click("button[data-view=compliance]")
            admin.wait_for_selector("#compliance-body h3")
            assert "completed" in admin.inner_text("#compliance-body")  # not yet: it says so
            admin.screenshot(path=str(tmp_path / "compliance-admin.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert len(list(tmp_path.glob("*.png"))) == 5
