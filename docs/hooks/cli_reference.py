"""MkDocs hook: generate reference pages from the code at build time.

- ``reference/cli.md`` holds the marker :data:`MARKER`; it is replaced by markdown built by
  walking ``tutela.cli.main.app`` through Typer's click layer (groups, commands, arguments
  and options with their help, types, defaults and environment variables).
- ``how-to/study-file.md`` holds :data:`STUDY_MARKER`; it is replaced by one table per
  section of the study file, read from the pydantic model ``tutela.fl.config.StudyConfig``
  (keys, types, defaults, constraints).

Nothing is copied by hand, so the pages cannot drift from the commands and keys that exist.
A page that lost its marker fails the build.

Run it alone to print the markdown: ``python docs/hooks/cli_reference.py [cli|study]``.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

MARKER = "<!-- cli-reference -->"
"""The line of ``reference/cli.md`` replaced by the generated reference."""

PAGE = "reference/cli.md"

STUDY_MARKER = "<!-- study-file-reference -->"
"""The line of ``how-to/study-file.md`` replaced by the study-file key tables."""

STUDY_PAGE = "how-to/study-file.md"


def _context(command: Any, name: str, parent: Any | None) -> Any:
    # Typer builds its commands on its own copy of click; ``make_context`` would parse
    # arguments, so build the context from the command's own context class.
    return command.context_class(command, info_name=name, parent=parent)


def _is_group(command: Any) -> bool:
    return hasattr(command, "list_commands") and hasattr(command, "get_command")


_CODE_SPAN = re.compile(r"(``?[^`]+``?)")


def _prose(text: str, *, in_table: bool = False) -> str:
    """Help text as markdown: ``<``, ``>`` (and in a table ``|``) outside code spans are
    shown as written, not read as HTML or as a cell border."""
    out = []
    for i, part in enumerate(_CODE_SPAN.split(text)):
        if i % 2:
            out.append(part)
            continue
        shown = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out.append(shown.replace("|", "\\|") if in_table else shown)
    return "".join(out)


def _cell(text: str) -> str:
    """One markdown table cell: no line breaks, no stray cell borders."""
    return " ".join(_prose(text, in_table=True).split())


def _code_cell(text: str) -> str:
    # Python-Markdown's tables keep pipes inside code spans, so none is escaped here.
    return "`" + " ".join(text.split()) + "`"


def _anchor(path: list[str]) -> str:
    return "-".join(path)


def _help(command: Any) -> str:
    return _prose(inspect.cleandoc(command.help or "").strip())


def _params(command: Any, ctx: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        left, right = record
        if param.param_type_name == "option" and getattr(param, "is_flag", False):
            # Flags take no value; show the switch (and its negation) only.
            left = " / ".join([*param.opts, *param.secondary_opts])
        (arguments if param.param_type_name == "argument" else options).append((left, right))
    return arguments, options


def _command_section(command: Any, path: list[str], ctx: Any, out: list[str]) -> None:
    level = min(len(path) + 1, 6)
    out.append(f"{'#' * level} `{' '.join(path)}` {{ #{_anchor(path)} }}")
    out.append("")
    usage = command.get_usage(ctx).removeprefix("Usage:").strip()
    out.extend(["```text", usage, "```", ""])
    text = _help(command)
    if text:
        out.extend([text, ""])
    if _is_group(command):
        names = command.list_commands(ctx)
        subs = [(n, command.get_command(ctx, n)) for n in names]
        subs = [(n, c) for n, c in subs if c is not None and not getattr(c, "hidden", False)]
        if subs:
            out.extend(["| command | what it does |", "|---|---|"])
            for name, sub in subs:
                summary = _cell(sub.get_short_help_str(limit=200))
                link = f"[`{' '.join([*path, name])}`](#{_anchor([*path, name])})"
                out.append(f"| {link} | {summary} |")
            out.append("")
        arguments, options = _params(command, ctx)
        _table(out, "option", options)
        for name, sub in subs:
            _command_section(sub, [*path, name], _context(sub, name, ctx), out)
        return
    arguments, options = _params(command, ctx)
    _table(out, "argument", arguments)
    _table(out, "option", options)


def _table(out: list[str], kind: str, rows: list[tuple[str, str]]) -> None:
    if not rows:
        return
    out.extend([f"| {kind} | description |", "|---|---|"])
    out.extend(f"| {_code_cell(left)} | {_cell(right)} |" for left, right in rows)
    out.append("")


def cli_markdown() -> str:
    """The whole CLI reference as markdown, from the live Typer app."""
    import typer

    from tutela.cli.main import app

    root = typer.main.get_command(app)
    out: list[str] = []
    _command_section(root, ["tutela"], _context(root, "tutela", None), out)
    return "\n".join(out).rstrip() + "\n"


def _type_name(annotation: Any) -> str:
    import enum
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f'`"{v}"`' for v in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f'`"{m.value}"`' for m in annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args)
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in names:
        return names[annotation]
    if origin is list:
        (item,) = typing.get_args(annotation)
        return f"list of {_type_name(item)}s"
    if origin is dict:
        _, value = typing.get_args(annotation)
        return f"table of {_type_name(value)}"
    if origin is tuple:
        return "[" + ", ".join(_type_name(a) for a in typing.get_args(annotation)) + "]"
    return _prose(str(annotation), in_table=True)


def _toml_value(value: Any) -> str:
    import enum
    import json

    if value is None:
        return "not set"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, dict) and not value:
        return "`{}`"
    return f"`{json.dumps(value)}`"


_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def _constraints(field: Any) -> str:
    parts = []
    for item in field.metadata:
        for attr, symbol in _BOUNDS.items():
            if getattr(item, attr, None) is not None:
                parts.append(f"{symbol} {getattr(item, attr)}")
        if getattr(item, "max_length", None) is not None:
            unit = "characters" if _type_name(field.annotation) == "string" else "entries"
            parts.append(f"at most {item.max_length} {unit}")
        if getattr(item, "pattern", None) is not None:
            parts.append(f"matches `{item.pattern}`")
    if field.description:
        parts.append(_prose(field.description, in_table=True))
    return "; ".join(parts)


def study_markdown() -> str:
    """One table per study-file section, from ``StudyConfig``'s pydantic fields."""
    import inspect as _inspect

    from tutela.fl.config import StudyConfig

    out: list[str] = []
    for section, field in StudyConfig.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and hasattr(model, "model_fields")):
            raise TypeError(f"study section {section!r} is not a pydantic model")
        out.extend([f"### `[{section}]`", ""])
        doc = _inspect.getdoc(model)
        if doc and model.__module__ == StudyConfig.__module__ and model.__doc__:
            out.extend([_prose(doc), ""])
        out.extend(["| key | type | default | constraints |", "|---|---|---|---|"])
        for key, sub in model.model_fields.items():
            default = _toml_value(sub.get_default(call_default_factory=True))
            out.append(
                f"| `{key}` | {_type_name(sub.annotation)} | {default} | {_constraints(sub)} |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _replace(markdown: str, page_uri: str, marker: str, make: Any) -> str:
    if marker not in markdown:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{page_uri} lost its marker line {marker!r}")
    return markdown.replace(marker, make())


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace the marker of each generated page with its generated reference."""
    if page.file.src_uri == PAGE:
        return _replace(markdown, PAGE, MARKER, cli_markdown)
    if page.file.src_uri == STUDY_PAGE:
        return _replace(markdown, STUDY_PAGE, STUDY_MARKER, study_markdown)
    return markdown


if __name__ == "__main__":
    import sys

    which = sys.argv[1] if len(sys.argv) > 1 else "cli"
    print(study_markdown() if which == "study" else cli_markdown(), end="")
