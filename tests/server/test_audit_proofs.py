"""Inclusion proofs of the coordinator's tamper-evident log, behind ``audit:read``: each
record comes with its leaf and an RFC 9162 proof against the latest (cosigned) checkpoint,
so a reader checks it on its own; a record edited in the coordinator's store no longer
proves, while the others still do. The dashboard's audit view runs the same check in the
page (Chromium) and flags the edited record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.report.browser import CHROMIUM, FLAGS, needs_browser
from tests.server.conftest import Live
from tests.server.test_dashboard_browser import _sign_in
from tutela.governance.merkle import leaf_hash, verify_inclusion
from tutela.server.serve import AUDIT_LOG


def _holds(record: dict[str, Any], checkpoint: dict[str, Any]) -> bool:
    """What a reader checks: the leaf says what the record says and hashes into the root."""
    fields = json.loads(record["leaf"])
    shown = [record[k] for k in ("index", "timestamp", "actor", "action", "resource", "outcome")]
    if fields[1:7] != shown or json.loads(fields[7]) != record["details"]:
        return False
    proof = [bytes.fromhex(p) for p in record["proof"]]
    digest = leaf_hash(record["leaf"].encode("utf-8"))
    root = bytes.fromhex(checkpoint["root"])
    return verify_inclusion(digest, record["index"], checkpoint["size"], proof, root)


def _tamper(live: Live, index: int) -> None:
    """Someone with access to the coordinator's disk edits one record (leaving its hash)."""
    log = live.server.settings.data_dir / AUDIT_LOG
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[index + 1])  # line 0 is the header
    assert record["i"] == index
    record["outcome"] = "ok" if record["outcome"] != "ok" else "quietly-changed"
    lines[index + 1] = json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
    log.write_text("".join(lines), encoding="utf-8")


def _checkpointed(live: Live) -> None:
    for _ in range(3):
        live.new_study()
    assert live.server.coordinator is not None
    live.server.coordinator.core.checkpoint_audit()


def test_every_record_proves_until_one_is_edited_in_the_store(live: Live) -> None:
    _checkpointed(live)
    with live.client("auditor") as c:
        before = c.get("/v1/admin/audit/proofs", params={"start": 0, "limit": 500}).json()
    checkpoint = before["checkpoint"]
    records = before["records"]
    assert checkpoint is not None and checkpoint["size"] >= 6
    proven = [r for r in records if "proof" in r]
    assert len(proven) == checkpoint["size"] and all(_holds(r, checkpoint) for r in proven)

    _tamper(live, 2)
    with live.client("auditor") as c:
        after = c.get("/v1/admin/audit/proofs", params={"start": 0, "limit": 500}).json()
    assert after["checkpoint"] == checkpoint
    verdicts = {r["index"]: _holds(r, checkpoint) for r in after["records"] if "proof" in r}
    assert verdicts[2] is False
    assert all(ok for i, ok in verdicts.items() if i != 2)
    # the default page is the newest records; later ones wait for the next checkpoint
    with live.client("admin") as c:
        c.post("/v1/admin/sites", json={"name": "hospital-9"})
        newest = c.get("/v1/admin/audit/proofs", params={"limit": 2}).json()
    assert [r["index"] for r in newest["records"]] == [
        newest["log_size"] - 2,
        newest["log_size"] - 1,
    ]
    assert "proof" not in newest["records"][-1]


def test_proofs_and_the_export_need_the_audit_permission(live: Live) -> None:
    with live.client("data-scientist") as c:
        for path in ("/v1/admin/audit/proofs", "/v1/admin/audit/export"):
            r = c.get(path)
            assert r.status_code == 403 and "audit:read" in r.json()["detail"]
    with live.client() as anon:
        assert anon.get("/v1/admin/audit/proofs").status_code == 401
    with live.client("auditor") as c:
        assert c.get("/v1/admin/audit/proofs", params={"limit": 501}).status_code == 422


@needs_browser
def test_the_audit_view_checks_each_proof_in_the_page_and_flags_an_edited_record(
    live: Live, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    _checkpointed(live)
    _tamper(live, 1)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            auditor = _sign_in(browser, live, "auditor", errors)
            auditor.click("button[data-view=audit]")
            auditor.wait_for_selector("#proof-summary")
            summary = auditor.inner_text("#proof-summary")
            assert "1 failed" in summary, summary
            assert auditor.get_attribute("[data-index='1']", "data-proof") == "failed"
            assert auditor.get_attribute("[data-index='0']", "data-proof") == "verified"
            assert auditor.locator("[data-proof=verified]").count() >= 5
            auditor.screenshot(path=str(tmp_path / "audit-proofs.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
