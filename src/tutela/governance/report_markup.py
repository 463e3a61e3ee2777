"""Markup helpers of the run report (and any other page Tutela writes without a script):
escaping, numbers, tables with captions and header scopes, definition lists, figures, status
badges that say their status in words, and the page's style and Content-Security-Policy.

Every helper escapes what it is given as data; cells and values passed as markup are the
caller's, already escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape

__all__ = ["CSP", "STYLE", "badge", "esc", "facts", "figure", "num", "sig", "table", "yes"]

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)
"""The page's Content-Security-Policy: inline styles only; nothing is fetched."""

STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a1a1a;
  background: #fff; margin: 0 auto; max-width: 1040px; padding: 0 1.25rem 3rem; line-height: 1.5; }
h1 { font-size: 1.8rem; margin-top: 1.5rem; }
h2 { border-bottom: 2px solid #0072B2; padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { margin-top: 1.8rem; }
a { color: #005a8c; }
a:focus-visible, [tabindex]:focus-visible, summary:focus-visible {
  outline: 3px solid #D55E00; outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; z-index: 1; }
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .92rem; min-width: 50%; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #c4c4c4; padding: .3rem .55rem; text-align: left; vertical-align: top; }
thead th { background: #eef3f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { font-weight: 700; padding: 0 .35rem; border-radius: 3px; white-space: nowrap; }
.status-pass { color: #0b5d2a; background: #e3f3e8; }
.status-fail { color: #9b0d0d; background: #fbe5e5; }
.status-not-applicable { color: #3d3d3d; background: #ececec; }
.warning { border-left: 4px solid #9b0d0d; background: #fbe5e5; padding: .5rem .8rem; }
.note { color: #3d3d3d; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
pre { background: #f4f4f4; padding: .6rem .8rem; overflow-x: auto; white-space: pre-wrap;
  word-break: break-all; }
figure { margin: 1rem 0; }
figcaption { font-size: .9rem; color: #3d3d3d; }
@media print { nav.toc { display: none; } h2 { break-before: page; } }
"""


def num(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def sig(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def esc(value: object) -> str:
    return escape(str(value))


def yes(value: bool) -> str:
    return "yes" if value else "no"


def table(
    caption: str,
    head: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
) -> str:
    """A table; the first cell of each row is its header; cells are already escaped."""
    out = [
        f'<div class="scroll" role="region" aria-label="{esc(caption)}" tabindex="0">',
        f"<table><caption>{esc(caption)}</caption><thead><tr>",
        *(f'<th scope="col">{esc(h)}</th>' for h in head),
        "</tr></thead><tbody>",
    ]
    for row in rows:
        cells = [f'<th scope="row">{row[0]}</th>']
        for i, cell in enumerate(row[1:], start=1):
            cls = ' class="num"' if i in numeric else ""
            cells.append(f"<td{cls}>{cell}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are already escaped."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs)
    return f'<dl class="facts">{items}</dl>'


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def badge(status: object, ok_word: str | None = None) -> str:
    value = getattr(status, "value", status)
    return f'<span class="status status-{esc(value)}">{esc(ok_word or value)}</span>'


# sections ------------------------------------------------------------------------------------
