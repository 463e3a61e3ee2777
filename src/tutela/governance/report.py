"""The run report: one self-contained HTML page (and a PDF where Chromium is installed)
that a privacy officer reads instead of ``results.json``, an SQLite log and a terminal table.

Everything comes from the run directory, read through the typed results model
(:func:`~tutela.governance.results.load_results`), the compliance checks
(:func:`~tutela.governance.comply.check_run`), the audit log
(:func:`~tutela.governance.audit.verify_log`) and the witnesses' cosignatures
(:func:`~tutela.governance.witness.witness_status`). It shows learning curves, federated
against centralised and local-only, the privacy-utility curve when several runs are given,
per-site metrics, each site's privacy ledger as a timeline, the secure-aggregation
parameters and dropouts, the GDPR, HIPAA and CCPA checks with the provisions they map to,
and the audit checkpoint's fingerprint with the commands that verify it.

Security:
    The report is evidence about a run directory that someone else may control. Every
    string read from it is HTML-escaped (a study named ``<script>...`` is shown, never run);
    the page loads nothing (no script, no external style, font or image; a
    Content-Security-Policy of ``default-src 'none'`` makes the browser refuse any load
    that slipped in). Audit logs are verified under the keys the reader pinned, and site
    ledgers are marked verified only when the site's signed report verifies under the key
    the site registered (or the one the reader pinned), never the key a report carries.
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutela.errors import AuditError, DataError
from tutela.governance._files import atomic_write
from tutela.governance.audit import RUN_CHECKPOINT, Checkpoint, VerificationReport, verify_log
from tutela.governance.checkpoint import VerifierKey
from tutela.governance.comply import ComplianceReport, Framework, check_run, site_report_problems
from tutela.governance.results import RunResults, load_results
from tutela.governance.trust import TrustStore
from tutela.governance.witness import WitnessManifest, witness_status

__all__ = [
    "REPORT_FILE",
    "AuditSummary",
    "LedgerSpend",
    "ReportFiles",
    "RunView",
    "SiteLedger",
    "chromium_path",
    "print_pdf",
    "read_run",
    "write_report",
]

REPORT_FILE = "report.html"
"""Where ``tutela report RUN_DIR`` (and ``tutela demo``) write the report by default."""
PDF_TIMEOUT_S = 120.0
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass(frozen=True)
class LedgerSpend:
    """One charge in a site's privacy ledger: when, what, and epsilon spent after it."""

    at: str
    label: str
    epsilon_after: float


@dataclass(frozen=True)
class SiteLedger:
    """A site's own privacy ledger, as its signed report carries it.

    ``problem`` says why the signed report does not verify (``None``: it verifies under
    the key registered or pinned for the site); an unverified ledger is still shown, marked.
    """

    site: str
    budget_epsilon: float | None
    spends: tuple[LedgerSpend, ...]
    problem: str | None


@dataclass(frozen=True)
class AuditSummary:
    """The run's audit log and checkpoint, checked under the reader's pinned keys.

    ``verification`` is ``None`` when the log could not be read (``problem`` says why).
    ``checkpoint_signers`` are the names on the checkpoint's signature lines (unverified);
    ``pinned_signers`` the pinned keys whose signature on it verifies (``pinned_keys``:
    the same keys, encoded for ``tutela audit trust add``).
    """

    log: Path | None
    verification: VerificationReport | None
    problem: str | None
    checkpoint: Checkpoint | None
    checkpoint_path: Path | None
    checkpoint_sha256: str | None
    checkpoint_signers: tuple[str, ...]
    pinned_signers: tuple[str, ...]
    pinned_keys: tuple[str, ...]
    witnesses: Mapping[str, Any] | None
    verify_commands: tuple[str, ...]


@dataclass(frozen=True)
class RunView:
    """What the report shows of one run directory."""

    path: Path
    results: RunResults
    compliance: tuple[ComplianceReport, ...]
    audit: AuditSummary
    ledgers: tuple[SiteLedger, ...]

    @property
    def title(self) -> str:
        """A short name: the study, and the privacy it ran under."""
        privacy = self.results.privacy
        spent = f"epsilon {privacy.epsilon:.3g}" if privacy is not None else "no DP"
        return f"{self.results.config.study.name} ({spent})"


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote (``pdf`` is ``None`` when no PDF was made)."""

    html: Path
    pdf: Path | None
    pdf_skipped: str | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _site_ledgers(
    results: RunResults, trusted_site_keys: Mapping[str, bytes] | None
) -> list[SiteLedger]:
    """Each site's ledger from its signed report, marked with whether the report verifies."""
    reports = results.sites or []
    if trusted_site_keys is not None:
        pinned = dict(trusted_site_keys)
    else:
        pinned = {site: bytes.fromhex(key) for site, key in (results.site_keys or {}).items()}
    problems = site_report_problems(reports, pinned)
    ledgers = []
    for report in reports:
        doc = report.ledger
        spends = []
        raw = doc.get("spends")
        for spend in raw if isinstance(raw, list) else []:
            if not isinstance(spend, dict):
                continue
            eps = _number(spend.get("epsilon_after"))
            if eps is None:
                continue
            spends.append(
                LedgerSpend(str(spend.get("created_at", "")), str(spend.get("label", "")), eps)
            )
        ledgers.append(
            SiteLedger(
                report.site,
                _number(doc.get("budget_epsilon")),
                tuple(spends),
                problems.get(report.site),
            )
        )
    return ledgers


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _audit_summary(
    run_dir: Path, results: RunResults, audit_keys: Sequence[VerifierKey]
) -> AuditSummary:
    gov = results.governance
    log = run_dir / gov.audit_log if gov is not None and gov.audit_log else None
    cp_path = run_dir / RUN_CHECKPOINT
    checkpoint = None
    problem = None
    verification = None
    try:
        if cp_path.is_file():
            checkpoint = Checkpoint.load(cp_path)
        if log is None:
            problem = "the run records no audit log"
        elif not log.is_file():
            problem = f"audit log {log.name} not found in the run directory"
        else:
            verification = verify_log(log, audit_keys, [checkpoint] if checkpoint else [])
            if not verification.ok:
                problem = verification.problem
    except (AuditError, OSError) as exc:
        problem = f"audit log unreadable: {exc}"
    commands = []
    if log is not None:
        verify = ["tutela", "audit", "verify", str(log)]
        if checkpoint is not None:
            verify += ["--checkpoint", str(cp_path)]
        commands.append(shlex.join(verify))
    witnesses: Mapping[str, Any] | None
    try:
        witnesses = witness_status(run_dir, audit_keys)
        found = WitnessManifest.find(run_dir)
    except AuditError as exc:
        witnesses, found = {"ok": False, "problem": str(exc)}, None
    if found is not None:
        directory, manifest = found
        commands.append(
            shlex.join(
                [
                    "tutela",
                    "audit",
                    "verify",
                    str(directory / manifest.log),
                    "--witnesses",
                    str(directory / manifest.cosigned),
                    "--witness-quorum",
                    str(max(1, len(manifest.witnesses))),
                ]
            )
        )
    signers = checkpoint.signers(audit_keys) if checkpoint is not None else ()
    return AuditSummary(
        log=log,
        verification=verification,
        problem=problem,
        checkpoint=checkpoint,
        checkpoint_path=cp_path if checkpoint is not None else None,
        checkpoint_sha256=_sha256(cp_path) if checkpoint is not None else None,
        checkpoint_signers=checkpoint.signer_names if checkpoint is not None else (),
        pinned_signers=tuple(k.name for k in signers),
        pinned_keys=tuple(k.encode() for k in signers),
        witnesses=witnesses,
        verify_commands=tuple(commands),
    )


def read_run(
    run_dir: str | os.PathLike[str],
    *,
    audit_keys: Iterable[VerifierKey] | None = None,
    trusted_site_keys: Mapping[str, bytes] | None = None,
) -> RunView:
    """Read one run directory for the report.

    Args:
        run_dir: a run directory with ``results.json``.
        audit_keys: the audit-signing (and witness) keys the reader pinned (default: the
            trust store); never a key the run carries.
        trusted_site_keys: site -> raw Ed25519 key the reader pinned for each site's signed
            report (default: the keys the sites registered, as the run records them).

    Raises:
        DataError: no run directory, or no readable, valid ``results.json``.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise DataError(f"run directory {path} does not exist")
    results = load_results(path / "results.json")
    keys = tuple(audit_keys) if audit_keys is not None else TrustStore.load().keys
    compliance = tuple(
        check_run(path, fw, trusted_keys=trusted_site_keys, audit_keys=keys) for fw in Framework
    )
    return RunView(
        path=path,
        results=results,
        compliance=compliance,
        audit=_audit_summary(path, results, keys),
        ledgers=tuple(_site_ledgers(results, trusted_site_keys)),
    )


def chromium_path() -> str | None:
    """A Chromium (or Chrome) on ``PATH``, else ``None``."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def print_pdf(html: Path, pdf: Path, *, browser: str | None = None) -> Path | None:
    """Print ``html`` to ``pdf`` with headless Chromium; ``None`` when none is installed.

    Raises:
        DataError: Chromium ran but wrote no PDF.
    """
    browser = browser or chromium_path()
    if browser is None:
        return None
    with tempfile.TemporaryDirectory(prefix="tutela-chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf.resolve()}",
            html.resolve().as_uri(),
        ]
        try:
            subprocess.run(  # noqa: S603 - a fixed argument list, no shell
                command, capture_output=True, timeout=PDF_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataError(f"could not print the report to PDF with {browser}: {exc}") from None
    if not pdf.is_file() or pdf.stat().st_size == 0:
        raise DataError(f"{browser} wrote no PDF to {pdf}")
    return pdf


def write_report(
    run_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    audit_keys: Iterable[VerifierKey] | None = None,
    trusted_site_keys: Mapping[str, bytes] | None = None,
    pdf: bool | None = None,
) -> ReportFiles:
    """Write the HTML report of one or more runs (default: ``report.html`` in the first).

    Args:
        run_dirs: run directories; with several, the report adds the privacy-utility curve.
        out: the HTML file to write.
        audit_keys: pinned audit and witness keys (default: the trust store).
        trusted_site_keys: pinned site keys (see :func:`read_run`).
        pdf: also print a PDF beside the HTML: ``True`` requires Chromium, ``None`` makes
            one when Chromium is installed and skips otherwise, ``False`` never.

    Raises:
        DataError: a run directory without a valid ``results.json``; ``pdf=True`` without
            Chromium.
        ValueError: no run directory given.
    """
    from tutela.governance.report_html import render_report  # imports this module

    if not run_dirs:
        raise ValueError("give at least one run directory")
    keys = tuple(audit_keys) if audit_keys is not None else TrustStore.load().keys
    runs = [read_run(d, audit_keys=keys, trusted_site_keys=trusted_site_keys) for d in run_dirs]
    target = Path(out) if out is not None else runs[0].path / REPORT_FILE
    atomic_write(target, render_report(runs).encode("utf-8"))
    if pdf is False:
        return ReportFiles(target, None, "not asked for")
    browser = chromium_path()
    if browser is None:
        if pdf:
            raise DataError("cannot make a PDF: no chromium on PATH (install Debian's chromium)")
        return ReportFiles(target, None, "no chromium on PATH")
    return ReportFiles(target, print_pdf(target, target.with_suffix(".pdf"), browser=browser))
