"""``tutela report``: the HTML report of real runs holds the numbers of their results.json,
is well formed, loads nothing, escapes what the run directory says, and checks the audit
log under the reader's pinned keys only."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tests.report.conftest import Runs
from tests.report.html_check import check_html
from tutela.errors import DataError
from tutela.governance.audit import RUN_CHECKPOINT, Checkpoint
from tutela.governance.report import chromium_path, read_run, write_report
from tutela.governance.report_html import render_report
from tutela.governance.results import SampleLevelPrivacy, SecAggPlusReport, load_results


def tutela(*args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess, with its own ``TUTELA_HOME``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTELA_")}
    env["TUTELA_HOME"] = str(home or cwd / "home")
    return subprocess.run(
        [sys.executable, "-m", "tutela", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def test_the_html_checker_catches_what_a_browser_would_repair() -> None:
    bad = (
        '<!DOCTYPE html><html><body><div id="a"><p id="a">x</div>'
        '<svg role="img"><line/></svg><table><tr><th>h</th></tr></table>'
        '<section aria-labelledby="nowhere"></section><img src="x.png"></body></html>'
    )
    problems = " | ".join(check_html(bad).problems)
    for expected in ("duplicate id", "</div> closes <p>", "svg without a title",
                     "table without a caption", "th without scope", "missing ids",
                     "img without alt", "unclosed"):  # fmt: skip
        assert expected in problems, problems


def test_report_holds_every_section_and_the_numbers_of_results_json(home: Runs) -> None:
    files = write_report([home.weak], pdf=False)
    assert files.html == home.weak / "report.html"
    source = files.html.read_text(encoding="utf-8")
    page = check_html(source)
    assert page.problems == []
    text = page.plain
    res = load_results(home.weak / "results.json")
    for section in ("learn", "base", "sites", "privacy", "sa", "comply", "audit"):
        assert f"run-0-{section}" in page.ids
    # learning curves: one chart per metric, and every round's numbers in the table
    for key in ("loss", "auc", "accuracy"):
        assert f"run-0-chart-{key}" in page.ids
    for entry in res.history:
        for value in (entry.loss, entry.accuracy, entry.auc):
            assert _num(value) in text
    # federated against the baselines
    for m in (res.federated, res.centralized, res.local_only):
        assert m is not None
        assert all(_num(v) in text for v in (m.accuracy, m.auc, m.log_loss))
    # per-site metrics and spend
    assert res.local_only_per_site is not None
    assert isinstance(res.privacy, SampleLevelPrivacy)
    for site, m in res.local_only_per_site.items():
        assert site in text and _num(m.auc) in text
        assert f"{res.privacy.per_site[site].epsilon:.4g}" in text
    # the ledger timeline: every charge of every site's signed ledger, marked verified
    assert res.sites is not None
    for report in res.sites:
        assert f"Ledger of {report.site} (signed report verified)" in text
        for spend in report.ledger["spends"]:
            assert spend["label"] in text and f"{spend['epsilon_after']:.4g}" in text
    assert "run-0-chart-ledger" in page.ids
    # secure aggregation parameters and dropouts
    sa = res.secure_aggregation
    assert isinstance(sa, SecAggPlusReport)
    assert f"Shamir threshold {sa.threshold}" in text and f"Neighbours (k) {sa.k}" in text
    assert "No site dropped out at any stage of any round." in text
    # compliance: every framework, with the provisions each check maps to
    for fw in ("GDPR", "HIPAA", "CCPA"):
        assert f"{fw}: all evidenced controls passed" in text
    assert "GDPR Art. 30" in text and "45 CFR 164.312(b)" in text
    # the checkpoint's fingerprint is the file's
    cp_path = home.weak / RUN_CHECKPOINT
    cp = Checkpoint.load(cp_path)
    assert hashlib.sha256(cp_path.read_bytes()).hexdigest() in text
    assert cp.root.hex() in text and f"Records covered {cp.size}" in text
    assert f"tutela audit trust add {home.audit_key.encode()}" in text


def test_the_printed_verify_command_verifies_the_run(home: Runs) -> None:
    """The instructions work: the command the report prints, run as printed, succeeds."""
    from tutela.cli.main import app

    view = read_run(home.weak)
    (command,) = view.audit.verify_commands
    args = shlex.split(command)
    assert args[:3] == ["tutela", "audit", "verify"]
    result = CliRunner().invoke(app, args[1:])
    assert result.exit_code == 0, result.output
    assert "ok: " in result.output


def test_report_loads_nothing(home: Runs) -> None:
    source = write_report([home.strong, home.weak], pdf=False).html.read_text("utf-8")
    page = check_html(source)
    assert not re.search(r"https?://", source)
    assert {"script", "link", "img", "iframe", "object", "embed"}.isdisjoint(page.tags)
    assert all(attr == "href" and value.startswith("#") for _, attr, value in page.urls)
    assert "default-src 'none'" in source  # the browser refuses any load that slips in


def test_several_runs_draw_the_privacy_utility_curve(home: Runs) -> None:
    page = check_html(write_report([home.weak, home.strong], pdf=False).html.read_text("utf-8"))
    assert page.problems == []
    assert {"compare", "chart-privacy-utility", "run-0", "run-1"} <= page.ids
    for run in (home.strong, home.weak):
        res = load_results(run / "results.json")
        assert res.privacy is not None
        assert f"{res.privacy.epsilon:.4g}" in page.plain
        assert _num(res.federated.auc) in page.plain
    assert "AUC, sample-level DP" in page.plain


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def test_markup_in_the_run_directory_is_shown_never_run(home: Runs, tmp_path: Path) -> None:
    """Whoever controls a run directory writes markup into results.json (a study name) and a
    site's ledger: the report shows it as text, and marks the altered ledger unverified."""
    run = _copy(home.weak, tmp_path / "run")
    doc = json.loads((run / "results.json").read_text("utf-8"))
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    doc["config"]["study"]["name"] = evil
    doc["sites"][0]["ledger"]["spends"][0]["label"] = evil
    (run / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    load_results(run / "results.json")  # still a valid results document
    source = write_report([run], pdf=False).html.read_text("utf-8")
    page = check_html(source)
    assert page.problems == []
    assert "<script" not in source.lower() and "<img" not in source.lower()
    assert page.urls and all(v.startswith("#") for _, _, v in page.urls)
    assert evil in page.plain  # shown as text
    site = doc["sites"][0]["site"]
    assert f"Ledger of {site} (signed report NOT verified" in page.plain


def test_a_rewritten_audit_record_is_reported_unverified(home: Runs, tmp_path: Path) -> None:
    run = _copy(home.weak, tmp_path / "run")
    with sqlite3.connect(run / "audit.sqlite") as db:
        db.execute("UPDATE records SET outcome = 'failure' WHERE idx = 2")
    view = read_run(run)
    assert view.audit.verification is not None and not view.audit.verification.ok
    text = check_html(render_report([view])).plain
    assert "not verified" in text
    assert "GDPR: failed: audit-log-verified" in text


def test_a_checkpoint_resigned_with_a_key_nobody_pinned_is_not_trusted(
    home: Runs, tmp_path: Path
) -> None:
    """The run directory carries a checkpoint re-signed with a fresh key (a rewritten
    history would need one): the report does not count it as signed by a pinned key."""
    run = _copy(home.weak, tmp_path / "run")
    old = Checkpoint.load(run / RUN_CHECKPOINT)
    Checkpoint.sign(old.origin, old.size, old.root, Ed25519PrivateKey.generate()).save(
        run / RUN_CHECKPOINT
    )
    view = read_run(run, audit_keys=[])
    assert view.audit.pinned_signers == ()
    assert view.audit.verification is not None and not view.audit.verification.ok
    text = check_html(render_report([view])).plain
    assert "Signed by a key you pinned no" in text
    assert "tutela audit trust add <name>+<key ID>+<key>" in text


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text('{"schema_version": 1}', encoding="utf-8")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json", encoding="utf-8")
    for target, message in (
        ("missing", "run directory missing does not exist"),
        ("bad", "is not a valid results document"),
        ("broken", "is not valid JSON"),
    ):
        r = tutela("report", target, cwd=tmp_path)
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
        assert "Traceback" not in r.stderr


def test_pdf_required_without_chromium_is_a_clear_error(
    home: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser here
    with pytest.raises(DataError, match="no chromium on PATH"):
        write_report([home.weak], tmp_path / "r.html", pdf=True)
    assert write_report([home.weak], tmp_path / "r.html").pdf_skipped == "no chromium on PATH"


@pytest.mark.skipif(chromium_path() is None, reason="no chromium on PATH")
def test_pdf_is_printed_where_chromium_is_installed(home: Runs, tmp_path: Path) -> None:
    files = write_report([home.weak], tmp_path / "report.html", pdf=True)
    assert files.pdf == tmp_path / "report.pdf"
    assert files.pdf.read_bytes().startswith(b"%PDF-")


def test_demo_writes_the_report_into_the_run_directory(tmp_path: Path) -> None:
    r = tutela("demo", "--quick", "--rounds", "2", "--in-process", "--run-dir", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"report: {Path('run') / 'report.html'}" in r.stdout
    page = check_html((tmp_path / "run" / "report.html").read_text("utf-8"))
    assert page.problems == []
    assert "GDPR: all evidenced controls passed" in page.plain  # verified under the pin
