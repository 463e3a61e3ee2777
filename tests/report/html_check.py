"""A strict structural check of HTML pages Tutela writes (the report, the dashboard).

Python's ``html.parser`` forgives everything, so this walks its events and fails on what a
browser would silently repair: an end tag that does not close the innermost open element,
an element left open, a duplicate ``id``, an ``aria-labelledby`` naming no element, a chart
(``svg``) without a title, a table without a caption or a header cell without a scope, an
image without alternative text. It also collects every URL-bearing attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip
SVG_SELF_CLOSING = {"line", "circle", "rect", "polygon", "polyline", "path"}
URL_ATTRS = {"src", "href", "action", "formaction", "poster", "data", "xlink:href"}


@dataclass
class Page:
    text: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    urls: list[tuple[str, str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.labelledby: list[str] = []
        self.svg_titles: list[bool] = []
        self.tables: list[bool] = []

    def _open(self, tag: str, attrs: dict[str, str | None]) -> None:
        page = self.page
        page.tags.append(tag)
        ident = attrs.get("id")
        if ident is not None:
            if ident in page.ids:
                page.problems.append(f"duplicate id {ident!r}")
            page.ids.add(ident)
        for name, value in attrs.items():
            if name in URL_ATTRS or name.startswith("on"):
                page.urls.append((tag, name, value or ""))
        if attrs.get("aria-labelledby"):
            self.labelledby += (attrs["aria-labelledby"] or "").split()
        if tag == "img" and not attrs.get("alt"):
            page.problems.append("img without alt")
        if tag == "th" and attrs.get("scope") not in ("col", "row"):
            page.problems.append("th without scope")
        if tag == "title" and self.stack and self.stack[-1][0] == "svg":
            self.svg_titles[-1] = True
        if tag == "caption" and self.stack and self.stack[-1][0] == "table":
            self.tables[-1] = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, dict(attrs))
        if tag == "svg":
            self.svg_titles.append(False)
        if tag == "table":
            self.tables.append(False)
        if tag not in VOID:
            self.stack.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, dict(attrs))
        if tag not in VOID and tag not in SVG_SELF_CLOSING:
            self.page.problems.append(f"self-closed <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.page.problems.append(f"end tag for void element </{tag}>")
            return
        if not self.stack or self.stack[-1][0] != tag:
            top = self.stack[-1][0] if self.stack else "nothing"
            self.page.problems.append(f"</{tag}> closes <{top}>")
            return
        self.stack.pop()
        if tag == "svg" and not self.svg_titles.pop():
            self.page.problems.append("svg without a title")
        if tag == "table" and not self.tables.pop():
            self.page.problems.append("table without a caption")

    def handle_data(self, data: str) -> None:
        if not self.stack or self.stack[-1][0] not in ("style", "script"):
            self.page.text.append(data)


def check_html(source: str) -> Page:
    """Parse ``source``; ``page.problems`` lists every structural fault found."""
    checker = _Checker()
    if not source.lstrip().lower().startswith("<!doctype html>"):
        checker.page.problems.append("no <!DOCTYPE html>")
    checker.feed(source)
    checker.close()
    page = checker.page
    if checker.stack:
        page.problems.append(f"unclosed: {[t for t, _ in checker.stack]}")
    missing = [i for i in checker.labelledby if i not in page.ids]
    if missing:
        page.problems.append(f"aria-labelledby names missing ids {missing[:5]}")
    return page
