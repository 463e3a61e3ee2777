"""HTML of the run report: semantic, self-contained, escaped (see :mod:`.report`).

One page: a table of contents, then, when several runs are given, the privacy-utility
comparison, then one article per run. Every table has a caption and header cells with a
scope; wide tables scroll in a focusable region; charts are inline SVG with a title and a
text description (:mod:`.report_svg`); statuses are written out, never shown by colour
alone. The page has no script and a Content-Security-Policy that forbids every load.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata

from tutela.governance.comply import ComplianceReport
from tutela.governance.report import RunView
from tutela.governance.report_markup import (
    CSP,
    STYLE,
    badge,
    esc,
    facts,
    figure,
    num,
    sig,
    table,
    yes,
)
from tutela.governance.report_svg import Bar, Line, Reference, bar_chart, line_chart
from tutela.governance.results import (
    CkksReport,
    ClientLevelPrivacy,
    Metrics,
    RunResults,
    SampleLevelPrivacy,
    SecAggPlusReport,
)

__all__ = ["render_report"]


def _privacy_line(res: RunResults) -> str:
    p = res.privacy
    if p is None:
        return "none"
    return esc(f"{p.level}: epsilon {p.epsilon:.4g} of {p.target_epsilon:.4g}, delta {p.delta:.1e}")


def _comparison(runs: Sequence[RunView]) -> str:
    out = [
        '<section aria-labelledby="compare"><h2 id="compare">Privacy and utility across runs</h2>'
    ]
    private = sorted(
        (r for r in runs if r.results.privacy is not None),
        key=lambda r: r.results.privacy.epsilon if r.results.privacy else 0.0,
    )
    plain = [r for r in runs if r.results.privacy is None]
    if private:
        refs = [
            Reference(f"no DP AUC ({r.results.config.study.name})", r.results.federated.auc)
            for r in plain
            if r.results.federated.auc is not None
        ]
        lines = []
        for mode in sorted({r.results.privacy.mode.value for r in private if r.results.privacy}):
            group = [r for r in private if r.results.privacy and r.results.privacy.mode == mode]
            eps = [r.results.privacy.epsilon if r.results.privacy else 0.0 for r in group]
            for metric in ("auc", "accuracy"):
                values = [getattr(r.results.federated, metric) for r in group]
                name = f"{'AUC' if metric == 'auc' else metric}, {mode}-level DP"
                lines.append(Line(name, list(zip(eps, values, strict=True))))
        svg = line_chart(
            "chart-privacy-utility",
            "Privacy-utility curve: federated test metrics by epsilon",
            lines,
            x_label="epsilon spent",
            y_label="score",
            references=refs,
        )
        out.append(figure(svg, "Smaller epsilon is stronger privacy; dashed: runs without DP."))
    else:
        out.append('<p class="note">No run used differential privacy: no curve to draw.</p>')
    rows = []
    for i, r in enumerate(runs):
        res, p = r.results, r.results.privacy
        rows.append(
            [
                f'<a href="#run-{i}">{esc(r.title)}</a>',
                esc(r.path),
                esc(p.mode.value if p is not None else "none"),
                sig(p.epsilon) if p is not None else "none",
                sig(p.delta) if p is not None else "none",
                num(res.federated.accuracy),
                num(res.federated.auc),
                num(res.federated.log_loss),
            ]
        )
    out.append(
        table(
            "Runs compared (federated model on the held-out test set)",
            ["run", "directory", "DP mode", "epsilon", "delta", "accuracy", "AUC", "log loss"],
            rows,
            numeric=(3, 4, 5, 6, 7),
        )
    )
    out.append("</section>")
    return "\n".join(out)


def _overview(res: RunResults) -> str:
    ds = res.dataset
    sa = res.secure_aggregation
    return facts(
        [
            ("Study", esc(res.config.study.name)),
            ("Purpose", esc(res.config.study.purpose)),
            (
                "Dataset",
                f"{esc(ds.name)}: {ds.rows} rows, outcome {esc(ds.outcome)}, "
                f"{len(ds.features)} features, {ds.test_rows} held-out test rows",
            ),
            ("Sites", str(ds.sites)),
            ("Rounds", f"{len(res.history)} of {res.rounds}"),
            ("Differential privacy", _privacy_line(res)),
            ("Secure aggregation", esc(sa.protocol.value) if sa is not None else "none"),
            (
                "Runtime",
                esc(res.deployment.transport) if res.deployment is not None else "in process",
            ),
            ("Wall-clock", f"{res.elapsed_s:.1f} s"),
        ]
    )


def _learning(rid: str, res: RunResults) -> str:
    out = [f'<section aria-labelledby="{rid}-learn"><h3 id="{rid}-learn">Learning curves</h3>']
    hist = res.history
    for key, label, base in (
        ("loss", "test loss (log loss)", "log_loss"),
        ("auc", "ROC AUC", "auc"),
        ("accuracy", "accuracy", "accuracy"),
    ):
        points = [(float(h.round), getattr(h, key)) for h in hist]
        if not any(y is not None for _, y in points):
            continue
        refs = []
        for name, m in (("centralised", res.centralized), ("local-only", res.local_only)):
            value = getattr(m, base) if m is not None else None
            if value is not None:
                refs.append(Reference(name, value))
        svg = line_chart(
            f"{rid}-chart-{key}",
            f"Federated {label} per round",
            [Line("federated", points)],
            x_label="round",
            y_label=label,
            references=refs,
        )
        out.append(figure(svg, f"Global model {label} after each round; dashed: baselines."))
    rows = [
        [
            str(h.round),
            esc(h.status.value),
            str(len(h.sites)),
            esc(", ".join(h.failed) or "none"),
            str(h.num_examples),
            num(h.loss),
            num(h.accuracy),
            num(h.auc),
        ]
        for h in hist
    ]
    out.append(
        table(
            "Rounds",
            ["round", "status", "sites", "failed", "examples", "loss", "accuracy", "AUC"],
            rows,
            numeric=(2, 4, 5, 6, 7),
        )
    )
    out.append("</section>")
    return "\n".join(out)


def _baselines(rid: str, res: RunResults) -> str:
    out = [
        f'<section aria-labelledby="{rid}-base"><h3 id="{rid}-base">'
        "Federated, centralised and local-only</h3>"
    ]
    models: list[tuple[str, Metrics | None]] = [
        ("federated", res.federated),
        ("centralised", res.centralized),
        ("local-only", res.local_only),
    ]
    present = [(n, m) for n, m in models if m is not None]
    bars = [Bar(n, [m.accuracy, m.auc]) for n, m in present]
    out.append(
        figure(
            bar_chart(
                f"{rid}-chart-baselines",
                "Test metrics by how the model was trained",
                ["accuracy", "AUC"],
                bars,
                y_label="score",
            ),
            "Centralised pools every site's data (the upper bound federation approximates without "
            "moving it); local-only is the mean of each site's own model.",
        )
    )
    if res.centralized is None or res.local_only is None:
        out.append('<p class="note">Baselines that were not computed are left out.</p>')
    out.append(
        table(
            "Held-out test metrics",
            ["model", "accuracy", "AUC", "log loss"],
            [[esc(n), num(m.accuracy), num(m.auc), num(m.log_loss)] for n, m in present],
            numeric=(1, 2, 3),
        )
    )
    out.append("</section>")
    return "\n".join(out)


def _sites(rid: str, run: RunView) -> str:
    res = run.results
    out = [f'<section aria-labelledby="{rid}-sites"><h3 id="{rid}-sites">Per-site metrics</h3>']
    local = res.local_only_per_site or {}
    per_site = res.privacy.per_site if isinstance(res.privacy, SampleLevelPrivacy) else {}
    ledgers = {led.site: led for led in run.ledgers}
    names = list(res.dataset.train_rows_per_site)
    if local:
        bars = [
            Bar("local-only AUC", [local[s].auc if s in local else None for s in names]),
            Bar("federated AUC", [res.federated.auc for _ in names]),
        ]
        out.append(
            figure(
                bar_chart(
                    f"{rid}-chart-sites",
                    "Each site's own model against the federated one",
                    names,
                    bars,
                    y_label="ROC AUC",
                ),
                "Each site alone, tested on the shared held-out set, beside the federated model.",
            )
        )
    rows = []
    for s in names:
        m = local.get(s)
        sp = per_site.get(s)
        led = ledgers.get(s)
        spent = (
            sp.epsilon
            if sp is not None
            else (led.spends[-1].epsilon_after if led and led.spends else None)
        )
        budget = (
            sp.budget_epsilon
            if sp is not None and sp.budget_epsilon is not None
            else (led.budget_epsilon if led else None)
        )
        rows.append(
            [
                esc(s),
                str(res.dataset.train_rows_per_site[s]),
                *((num(m.accuracy), num(m.auc), num(m.log_loss)) if m else ("n/a",) * 3),
                sig(spent),
                sig(budget),
            ]
        )
    out.append(
        table(
            "Sites",
            [
                "site",
                "training rows",
                "local accuracy",
                "local AUC",
                "local log loss",
                "epsilon spent",
                "epsilon budget",
            ],
            rows,
            numeric=(1, 2, 3, 4, 5, 6),
        )
    )
    out.append("</section>")
    return "\n".join(out)


def _privacy(rid: str, run: RunView) -> str:
    res = run.results
    p = res.privacy
    out = [f'<section aria-labelledby="{rid}-privacy"><h3 id="{rid}-privacy">Privacy ledger</h3>']
    if p is None:
        out.append(
            '<p class="warning">This run was <strong>not</strong> differentially private: '
            "the released model carries no formal bound on what it reveals about any "
            "record.</p>"
        )
    else:
        out.append(
            facts(
                [
                    ("Level", esc(p.level)),
                    ("Mechanism", esc(p.mechanism)),
                    ("Neighbouring datasets", esc(p.neighbouring)),
                    ("Accountant", esc(p.accountant.value)),
                    ("Epsilon spent", f"{sig(p.epsilon)} of a target of {sig(p.target_epsilon)}"),
                    ("Delta", esc(f"{p.delta:.1e}")),
                    ("Ledger", esc(p.ledger or "none")),
                ]
            )
        )
    if isinstance(p, ClientLevelPrivacy):
        out.append(
            table(
                "DP-FedAvg noise per round",
                ["round", "clip norm", "noise std on the sum", "distributed"],
                [
                    [str(r.round), sig(r.clip_norm), sig(r.noise_std_on_sum), yes(r.distributed)]
                    for r in p.rounds
                ],
                numeric=(1, 2),
            )
        )
    timed = [led for led in run.ledgers if led.spends]
    if timed:
        lines = [
            Line(led.site, [(float(i + 1), s.epsilon_after) for i, s in enumerate(led.spends)])
            for led in timed
        ]
        budgets = sorted({led.budget_epsilon for led in timed if led.budget_epsilon is not None})
        refs = [Reference(f"budget {b:.3g}", b) for b in budgets]
        out.append(
            figure(
                line_chart(
                    f"{rid}-chart-ledger",
                    "Epsilon spent at each site, charge by charge",
                    lines,
                    x_label="charge",
                    y_label="epsilon spent",
                    references=refs,
                    y_from_zero=True,
                ),
                "Each site's own ledger (from its signed report); dashed: the budget it enforces.",
            )
        )
    for led in run.ledgers:
        mark = (
            "signed report verified"
            if led.problem is None
            else f"signed report NOT verified: {led.problem}"
        )
        out.append(f"<details><summary>Ledger of {esc(led.site)} ({esc(mark)})</summary>")
        out.append(
            table(
                f"Privacy ledger of {led.site}",
                ["charge", "time (UTC)", "what", "epsilon after"],
                [
                    [str(i + 1), esc(s.at), esc(s.label), sig(s.epsilon_after)]
                    for i, s in enumerate(led.spends)
                ],
                numeric=(3,),
            )
        )
        out.append("</details>")
    out.append("</section>")
    return "\n".join(out)


def _secure(rid: str, res: RunResults) -> str:
    sa = res.secure_aggregation
    out = [f'<section aria-labelledby="{rid}-sa"><h3 id="{rid}-sa">Secure aggregation</h3>']
    if sa is None:
        out.append(
            '<p class="warning">No secure aggregation: the coordinator saw each site\'s '
            "update.</p></section>"
        )
        return "\n".join(out)
    if isinstance(sa, SecAggPlusReport):
        out.append(
            facts(
                [
                    ("Protocol", f"SecAgg+ (version {esc(sa.version)})"),
                    ("Sites (n)", str(sa.n)),
                    ("Neighbours (k)", str(sa.k)),
                    ("Shamir threshold", str(sa.threshold)),
                    ("Fewest survivors to unmask", str(sa.min_survivors)),
                    ("Colluding sites tolerated", esc(sa.max_colluding_clients)),
                    ("Modulus", f"2^{sa.modulus_bits}"),
                    ("Clip range", sig(sa.clip)),
                    ("Quantisation error bound", sig(sa.quantization_error_bound)),
                    ("Values clipped", esc(sa.clipped_values)),
                    ("Rounds", str(sa.rounds)),
                    (
                        "Distributed DP noise",
                        "on" if sa.ddp is not None and sa.ddp.enabled else "off",
                    ),
                ]
            )
        )
        stages = list(sa.dropped_per_stage)
        if any(sa.dropped_per_stage.values()):
            dropped = [Bar("dropped", [float(sa.dropped_per_stage[s]) for s in stages])]
            chart = bar_chart(
                f"{rid}-chart-dropouts",
                "Sites dropped at each SecAgg+ stage (whole study)",
                [s.replace("_", " ") for s in stages],
                dropped,
                y_label="sites dropped",
            )
            caption = "Sites that dropped out at each protocol stage, summed over every round."
            out.append(figure(chart, caption))
        else:
            out.append("<p>No site dropped out at any stage of any round.</p>")
        out.append(
            table(
                "Dropouts per stage",
                ["stage", "sites dropped"],
                [[esc(s), str(n)] for s, n in sa.dropped_per_stage.items()],
                numeric=(1,),
            )
        )
        if sa.per_round:
            out.append(
                table(
                    "SecAgg+ per round",
                    ["round", "survivors", *stages],
                    [
                        [
                            str(r.round),
                            str(r.survivors),
                            *(str(r.dropped_count.get(s, 0)) for s in stages),
                        ]
                        for r in sa.per_round
                    ],
                    numeric=tuple(range(1, 2 + len(stages))),
                )
            )
    elif isinstance(sa, CkksReport):
        out.append(
            facts(
                [
                    ("Protocol", f"CKKS ({esc(sa.library)})"),
                    ("Polynomial degree", str(sa.poly_modulus_degree)),
                    ("Coefficient moduli (bits)", esc(sa.coeff_mod_bit_sizes)),
                    ("Scale", f"2^{sa.scale_bits}"),
                    ("Security", f"{sa.security_bits} bits"),
                    ("Sites", str(sa.n)),
                    ("Rounds", str(sa.rounds)),
                    ("Approximation error bound", sig(sa.approximation_error_bound)),
                    ("Coordinator holds the secret key", yes(sa.coordinator_holds_secret_key)),
                    ("Fewest contributions a site decrypts", esc(sa.min_contributions_to_decrypt)),
                ]
            )
        )
        if sa.key_holders:
            holders = [[esc(k.party), esc(k.holds), esc(k.can_decrypt)] for k in sa.key_holders]
            out.append(table("Who holds which key", ["party", "holds", "can decrypt"], holders))
    out.append("</section>")
    return "\n".join(out)


def _compliance(rid: str, reports: Sequence[ComplianceReport]) -> str:
    out = [
        f'<section aria-labelledby="{rid}-comply"><h3 id="{rid}-comply">Compliance checks</h3>',
        '<p class="note">Technical controls evidenced by the run; this is not a legal opinion. '
        "The same checks as <code>tutela comply</code>.</p>",
    ]
    for rep in reports:
        name = rep.framework.value.upper()
        verdict = (
            "all evidenced controls passed" if rep.passed else "failed: " + ", ".join(rep.failed)
        )
        out.append(f"<h4>{esc(name)}: {badge('pass' if rep.passed else 'fail', verdict)}</h4>")
        out.append(
            table(
                f"{name} controls",
                ["check", "status", "provisions", "reason"],
                [
                    [esc(r.id), badge(r.status), esc("; ".join(r.references)), esc(r.reason)]
                    for r in rep.results
                ],
            )
        )
    out.append("</section>")
    return "\n".join(out)


def _audit(rid: str, run: RunView) -> str:
    a = run.audit
    out = [f'<section aria-labelledby="{rid}-audit"><h3 id="{rid}-audit">Audit trail</h3>']
    v = a.verification
    state = badge("pass", "verified") if v is not None and v.ok else badge("fail", "not verified")
    pairs = [
        ("Audit log", esc(a.log) if a.log is not None else "none"),
        ("Verification under your pinned keys", f"{state} {esc(v.describe() if v else a.problem)}"),
    ]
    cp = a.checkpoint
    if cp is not None:
        pairs += [
            ("Checkpoint file", esc(a.checkpoint_path)),
            ("Checkpoint SHA-256 (fingerprint)", f"<code>{esc(a.checkpoint_sha256)}</code>"),
            ("Log origin", esc(cp.origin)),
            ("Records covered", str(cp.size)),
            ("Root hash (hex)", f"<code>{cp.root.hex()}</code>"),
            ("Root hash (base64)", f"<code>{base64.b64encode(cp.root).decode()}</code>"),
            ("Signature lines (as named)", esc(", ".join(a.checkpoint_signers) or "none")),
            ("Signed by a key you pinned", esc(", ".join(a.pinned_signers) or "no")),
        ]
    else:
        pairs.append(("Checkpoint", "none in the run directory"))
    w = a.witnesses
    if w is not None:
        quorum = badge("pass", "quorum") if w.get("ok") else badge("fail", "no quorum")
        pairs.append(("Witnesses", f"{quorum} {esc(w.get('describe') or w.get('problem') or '')}"))
    out.append(facts(pairs))
    pin_key = a.pinned_keys[0] if a.pinned_keys else "<name>+<key ID>+<key>"
    out.append("<h4>How to verify it yourself</h4>")
    out.append(
        "<ol><li>Compare the audit key with the one its operator gave you out of band, "
        f"and pin it: <code>tutela audit trust add {esc(pin_key)}"
        "</code> (pin each site's witness key the same way).</li>"
        "<li>Check every record against the checkpoint:</li></ol>"
    )
    commands = "\n".join(a.verify_commands) or "no audit log to verify"
    out.append(f"<pre><code>{esc(commands)}</code></pre>")
    cp_file = esc(a.checkpoint_path or "audit.checkpoint")
    out.append(
        f"<p>Compare the checkpoint's SHA-256 with <code>sha256sum {cp_file}</code> "
        "and with the copy you were sent.</p>"
    )
    out.append("</section>")
    return "\n".join(out)


def _run_article(i: int, run: RunView) -> str:
    rid = f"run-{i}"
    return "\n".join(
        [
            f'<article aria-labelledby="{rid}"><h2 id="{rid}">Run: {esc(run.title)}</h2>',
            f"<p>Directory <code>{esc(run.path)}</code></p>",
            _overview(run.results),
            _learning(rid, run.results),
            _baselines(rid, run.results),
            _sites(rid, run),
            _privacy(rid, run),
            _secure(rid, run.results),
            _compliance(rid, run.compliance),
            _audit(rid, run),
            "</article>",
        ]
    )


def _toc(runs: Sequence[RunView]) -> str:
    items = (
        ['<li><a href="#compare">Privacy and utility across runs</a></li>'] if len(runs) > 1 else []
    )
    parts = (
        ("learn", "Learning curves"),
        ("base", "Baselines"),
        ("sites", "Per-site metrics"),
        ("privacy", "Privacy ledger"),
        ("sa", "Secure aggregation"),
        ("comply", "Compliance"),
        ("audit", "Audit trail"),
    )
    for i, run in enumerate(runs):
        sub = "".join(f'<li><a href="#run-{i}-{k}">{esc(t)}</a></li>' for k, t in parts)
        items.append(f'<li><a href="#run-{i}">{esc(run.title)}</a><ul>{sub}</ul></li>')
    return (
        f'<nav class="toc" aria-label="Contents"><h2>Contents</h2><ul>{"".join(items)}</ul></nav>'
    )


def _version() -> str:
    try:
        return metadata.version("tutela")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "(source tree)"


def render_report(runs: Sequence[RunView], *, now: datetime | None = None) -> str:
    """The report page for ``runs`` (the first is the main run)."""
    if not runs:
        raise ValueError("a report needs at least one run")
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    title = f"Tutela run report: {runs[0].title}" + (
        f" and {len(runs) - 1} more" if len(runs) > 1 else ""
    )
    body = [_toc(runs), "<main>"]
    if len(runs) > 1:
        body.append(_comparison(runs))
    body += [_run_article(i, run) for i, run in enumerate(runs)]
    body.append("</main>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            '<a class="skip" href="#run-0">Skip to the report</a>',
            f'<header><h1>{esc(title)}</h1><p class="note">Written by Tutela {esc(_version())} on '
            f"{esc(stamp)} from the run directory; nothing on this page loads from the network."
            "</p></header>",
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )
