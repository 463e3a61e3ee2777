"""`tutela demo` through the real coordinator names the coordinator's audit key, where it is
pinned, and the sites that witnessed its log; the command it prints verifies the quorum, and
a rewritten coordinator log fails it."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from tests.cli.run import tutela


def test_demo_names_the_audit_key_and_witnesses_and_its_check_passes(tmp_path: Path) -> None:
    r = tutela("demo", "--rounds", "2", "--run-dir", "run", "--out", "run.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    results = json.loads((tmp_path / "run.json").read_text())
    witnessed = results["deployment"]["witnesses"]
    assert f"coordinator audit log signed by {witnessed['audit_key']}" in out
    assert "trusted-audit-keys" in out  # where it is pinned
    assert f"witnessed by {len(witnessed['keys'])} site(s)" in out
    assert all(key in out for key in witnessed["keys"])
    assert len(witnessed["keys"]) == results["dataset"]["sites"]
    check = re.search(r"check: (tutela audit verify .*)", out)
    assert check is not None
    args = shlex.split(check.group(1))[1:]
    ok = tutela(*args, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert f"witnesses: {len(witnessed['keys'])} of {len(witnessed['keys'])} required" in ok.stdout
    comply = tutela("comply", "run", "--json", cwd=tmp_path)
    assert comply.returncode == 0, comply.stderr
    audit = next(c for c in json.loads(comply.stdout)["checks"] if c["id"] == "audit-log-verified")
    assert audit["evidence"]["witnesses"]["ok"] is True
    # the coordinator's log cut back by one record: the witnesses' checkpoint no longer fits
    log = Path(args[2]) if Path(args[2]).is_absolute() else tmp_path / args[2]
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    log.write_text("".join(lines[:-1]), encoding="utf-8")
    bad = tutela(*args, cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
