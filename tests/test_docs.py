"""The documentation site: it builds with no warning, its generated pages cover the code,
and the site-policy example it shows is a policy the real parser accepts in full."""

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from tutela.governance import SitePolicy

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "site-policy.toml"
API_PACKAGES = (
    "tutela",
    "tutela.fl",
    "tutela.dp",
    "tutela.secagg",
    "tutela.he",
    "tutela.smpc",
    "tutela.anonymize",
    "tutela.governance",
    "tutela.data",
)


def _hook():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", DOCS / "hooks" / "cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site once with ``mkdocs build --strict``; any warning fails it."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=env,
    )
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-5000:]
    warnings = [line for line in log.splitlines() if re.match(r"\s*(WARNING|ERROR)\b", line)]
    assert not warnings, warnings
    return out


def _page(site: Path, uri: str) -> str:
    return (site / uri / "index.html").read_text(encoding="utf-8")


def _commands(command, ctx, path):
    yield path
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            yield from _commands(
                sub, sub.context_class(sub, info_name=name, parent=ctx), [*path, name]
            )


def test_docs_build_strict_and_the_cli_reference_has_every_command(site):
    import typer

    from tutela.cli.main import app

    root = typer.main.get_command(app)
    html = _page(site, "reference/cli")
    paths = list(_commands(root, root.context_class(root, info_name="tutela"), ["tutela"]))
    assert len(paths) > 40
    missing = [" ".join(p) for p in paths if f'id="{"-".join(p)}"' not in html]
    assert not missing, missing
    # options come from the app too: one the site operator needs, with its help text
    assert "--policy" in html and "Site policy TOML" in html
    assert "<!-- cli-reference -->" not in html


def test_every_exported_name_has_an_api_entry(site):
    missing = []
    for package in API_PACKAGES:
        module = importlib.import_module(package)
        page = "tutela" if package == "tutela" else package.removeprefix("tutela.")
        html = _page(site, f"api/{page}")
        assert f'id="{package}"' in html, package
        for name in getattr(module, "__all__", ()):
            if name.startswith("_"):  # private and dunder names are filtered from the pages
                continue
            # a name that is also a submodule (mondrian, partition) is documented from there
            shadowed = importlib.util.find_spec(f"{package}.{name}") is not None
            ident = f"{package}.{name}.{name}" if shadowed else f"{package}.{name}"
            if f'id="{ident}"' not in html:
                missing.append(ident)
    assert not missing, missing


def test_the_study_file_page_lists_every_study_key(site):
    from tutela.fl.config import StudyConfig

    html = _page(site, "how-to/study-file")
    for section, field in StudyConfig.model_fields.items():
        assert f"<code>[{section}]</code>" in html, section
        for key in field.annotation.model_fields:
            assert f"<code>{key}</code>" in html, f"{section}.{key}"


def test_the_site_policy_page_shows_the_tested_example(site):
    html = _page(site, "reference/site-policy")
    assert "--8&lt;--" not in html  # the snippet was included, not shown as text
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("factory = "):
            assert line.split('"')[1] in html


def _keys(doc, prefix=""):
    """Dotted keys of a policy document (purpose names and model entries collapsed)."""
    out = set()
    for key, value in doc.items():
        name = f"{prefix}{key}"
        out.add(name)
        if key == "purposes":
            out |= {f"{name}.*.{k}" for spec in value.values() for k in spec}
        elif key == "models":
            out |= {f"{name}.{k}" for entry in value for k in entry}
        elif isinstance(value, dict):
            out |= _keys(value, f"{name}.")
    return out


def test_the_site_policy_example_is_complete_and_parses():
    policy = SitePolicy.from_toml(EXAMPLE)
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    enforced = policy.to_json()
    # every key the parser knows (all of them appear in to_json) is set in the example
    assert _keys(enforced) <= _keys(raw), _keys(enforced) - _keys(raw)
    # and was read from the file, not defaulted: each value is what the file says
    for table in ("floor", "limits"):
        for key, value in raw[table].items():
            assert enforced[table][key] == value, f"{table}.{key}"
    assert enforced["site"] == raw["site"]
    assert set(enforced["never_share"]) == set(raw["never_share"])
    assert set(enforced["purposes"]) == set(raw["purposes"])
    # the example is stricter than the defaults where it says so
    assert policy.min_secagg_threshold == 3


def test_every_site_policy_key_is_documented():
    text = (DOCS / "reference" / "site-policy.md").read_text(encoding="utf-8")
    keys = {k.split(".")[-1] for k in _keys(SitePolicy().to_json()) if "*" not in k}
    keys |= {"columns", "factory", "sha256"}
    undocumented = sorted(k for k in keys if f"| `{k}` |" not in text)
    assert not undocumented, undocumented


def test_a_broken_example_policy_is_refused_naming_the_key(tmp_path):
    bad = tmp_path / "policy.toml"
    text = EXAMPLE.read_text(encoding="utf-8").replace("max_epsilon = 3.0", "max_epsilom = 3.0")
    bad.write_text(text, encoding="utf-8")
    from tutela.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown key floor\.max_epsilom"):
        SitePolicy.from_toml(bad)


def test_a_generated_page_without_its_marker_fails_the_build():
    from mkdocs.exceptions import PluginError

    hook = _hook()
    page = SimpleNamespace(file=SimpleNamespace(src_uri=hook.PAGE))
    with pytest.raises(PluginError, match="marker"):
        hook.on_page_markdown("# CLI reference\n", page=page)
    other = SimpleNamespace(file=SimpleNamespace(src_uri="index.md"))
    assert hook.on_page_markdown("# Home\n", page=other) == "# Home\n"
