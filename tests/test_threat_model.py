"""docs/threat-model.md names the test behind each claim: every named test must exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_threat_model_names_exists():
    text = (ROOT / "docs" / "threat-model.md").read_text(encoding="utf-8")
    named: list[tuple[str, str]] = []
    for line in text.splitlines():
        current = None  # a `::name` reference continues the file named before it
        for path, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", line):
            if path:
                assert (ROOT / path).exists(), path
                current = path
            if name:
                assert current is not None, line
                named.append((current, name))
    assert len(named) >= 20
    missing = [
        (path, name)
        for path, name in named
        if not re.search(rf"^def {name}\(", (ROOT / path).read_text(encoding="utf-8"), re.M)
    ]
    assert not missing, missing
