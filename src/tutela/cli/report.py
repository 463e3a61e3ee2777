"""``tutela report``: the run report, one self-contained HTML page (and a PDF).

Audit logs in the report are verified under the keys you pinned (the trust store, plus any
``--trusted-key``), as ``tutela comply`` and ``tutela audit verify`` do; site reports under
the keys the sites registered, or those in ``--site-keys``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tutela.cli.governance import TrustedOpt, TrustStoreOpt, _audit_keys


class PdfChoice(StrEnum):
    """``--pdf``: auto (when Chromium is installed), yes (required) or no."""

    AUTO = "auto"
    YES = "yes"
    NO = "no"


def report(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="Run directories (several: adds the privacy-utility curve)."),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default: report.html in the first run)."),
    ] = None,
    pdf: Annotated[
        PdfChoice,
        typer.Option("--pdf", help="Also print a PDF beside it with Chromium: auto, yes or no."),
    ] = PdfChoice.AUTO,
    site_keys: Annotated[
        Path | None,
        typer.Option(
            "--site-keys",
            help="JSON object mapping each site to the hex Ed25519 key you pinned for it "
            "(default: the keys the sites registered at join, as the run records them).",
            show_default=False,
        ),
    ] = None,
    trusted_key: TrustedOpt = None,
    trust_store: TrustStoreOpt = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option(
            "--tensorboard",
            help="Also write each run's round metrics and privacy summary as TensorBoard "
            "events under this directory (needs the tracking extra).",
            show_default=False,
        ),
    ] = None,
    mlflow: Annotated[
        str | None,
        typer.Option(
            "--mlflow",
            help="Also log each run's round metrics and privacy summary to MLflow at this "
            "tracking URI (a server URL or sqlite:///mlflow.db; needs the tracking extra).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write the report of a run: curves, baselines, privacy ledger, secure aggregation,
    compliance checks and the audit checkpoint with how to verify it."""
    from tutela.governance.comply import load_trusted_keys
    from tutela.governance.report import write_report

    pinned = load_trusted_keys(site_keys) if site_keys is not None else None
    files = write_report(
        run_dirs,
        out,
        audit_keys=_audit_keys(trusted_key, trust_store),
        trusted_site_keys=pinned,
        pdf={PdfChoice.AUTO: None, PdfChoice.YES: True, PdfChoice.NO: False}[pdf],
    )
    typer.echo(f"report written to {files.html}")
    if files.pdf is not None:
        typer.echo(f"PDF written to {files.pdf}")
    elif pdf is PdfChoice.AUTO:
        typer.echo(f"PDF skipped: {files.pdf_skipped}")
    if tensorboard is not None:
        from tutela.governance.report_tracking import export_tensorboard

        for run_dir in run_dirs:
            typer.echo(f"TensorBoard events written to {export_tensorboard(run_dir, tensorboard)}")
    if mlflow is not None:
        from tutela.governance.report_tracking import export_mlflow

        for run_dir in run_dirs:
            typer.echo(f"MLflow run {export_mlflow(run_dir, mlflow)} logged to {mlflow}")


def register(app: typer.Typer) -> None:
    """Attach ``report`` to the root app."""
    app.command("report")(report)
