"""Site agents forked from one launcher: each runs ``tutela site run`` as a process of its
own, with the command line's errors and exit status, its output in its own log."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tutela.server import site_processes
from tutela.server.site_processes import SiteProcess, site_arguments, site_command


def _kwargs(tmp_path: Path, **over: object) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "coordinator": "https://127.0.0.1:9",
        "name": "hospital-1",
        "ca_file": tmp_path / "missing-ca.pem",
        "cert_file": tmp_path / "site.pem",
        "key_file": tmp_path / "site.key",
        "data": tmp_path / "data.csv",
        "policy_file": tmp_path / "policy.toml",
        "seed": 3,
    }
    kwargs.update(over)
    return kwargs


def test_the_arguments_are_those_of_tutela_site_run(tmp_path: Path) -> None:
    kwargs = _kwargs(tmp_path, enrol_token=None)
    args = site_arguments(kwargs)
    assert args[:2] == ["site", "run"] and "--enrol-token" not in args
    assert args[args.index("--seed") + 1] == "3"
    assert site_command(kwargs)[1:3] == ["-m", "tutela"]


def test_a_site_that_fails_exits_with_the_clis_one_line_error_in_its_own_log(
    tmp_path: Path,
) -> None:
    log = tmp_path / "agent.log"
    log.write_text("an older run's output\n")
    site = SiteProcess(_kwargs(tmp_path), log)
    assert site.wait(timeout=60) == 1
    assert site.poll() == 1 and site.returncode == 1
    text = log.read_text()
    assert "older run" not in text  # emptied, not appended to
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    # the same arguments through a fresh interpreter give the same line and status
    direct = subprocess.run(
        site_command(_kwargs(tmp_path)), check=False, capture_output=True, text=True
    )
    assert direct.returncode == 1 and direct.stderr.strip() == lines[0]


def test_sites_are_separate_processes_that_can_be_stopped(tmp_path: Path) -> None:
    sites = [
        SiteProcess(_waiting(tmp_path, name=f"hospital-{i}"), log)
        for i, log in enumerate([tmp_path / "a.log", tmp_path / "b.log"])
    ]
    assert len({s.pid for s in sites} | {os.getpid()}) == 3
    time.sleep(0.5)
    assert all(s.poll() is None for s in sites)
    with pytest.raises(subprocess.TimeoutExpired):
        sites[0].wait(timeout=0.2)
    sites[0].terminate()
    sites[1].kill()
    assert sites[0].wait(timeout=30) == -signal.SIGTERM
    assert sites[1].wait(timeout=30) == -signal.SIGKILL
    sites[0].kill()  # already ended: nothing to do


def test_the_launcher_stops_its_sites_when_the_deployment_goes(tmp_path: Path) -> None:
    launcher = site_processes._Launcher()  # a private one, to close
    ident, pid = launcher.start(site_arguments(_waiting(tmp_path)), tmp_path / "a.log")
    assert launcher.exit_code(ident, 0.5) is None  # running
    launcher._in.close()  # the deployment's end of the pipe
    assert launcher._proc.wait(timeout=30) == 0
    assert not _alive(pid)  # stopped and reaped before the launcher left


def test_sites_of_a_launcher_killed_outright_are_stopped_by_the_kernel(tmp_path: Path) -> None:
    launcher = site_processes._Launcher()
    ident, pid = launcher.start(site_arguments(_waiting(tmp_path)), tmp_path / "a.log")
    assert launcher.exit_code(ident, 0.5) is None
    launcher._proc.kill()  # no chance to stop anything itself
    launcher._proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(pid):
        assert time.monotonic() < deadline, "the site outlived its launcher"
        time.sleep(0.05)
    assert launcher.exit_code(ident, 0) == 1  # gone with its launcher: failed


def test_each_site_runs_in_the_callers_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_processes.prewarm()  # the launcher starts before the caller moves
    kwargs = _waiting(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    (work / "ca.pem").write_bytes(Path(str(kwargs["ca_file"])).read_bytes())
    kwargs["ca_file"] = "ca.pem"  # relative: read where the caller is, as a command would
    monkeypatch.chdir(work)
    found = SiteProcess(kwargs, tmp_path / "found.log")
    monkeypatch.chdir(tmp_path)  # no ca.pem here
    missing = SiteProcess(kwargs, tmp_path / "missing.log")
    assert missing.wait(timeout=60) == 1
    assert "No such file" in (tmp_path / "missing.log").read_text()
    time.sleep(0.5)
    assert found.poll() is None, (tmp_path / "found.log").read_text()
    found.kill()
    assert found.wait(timeout=30) == -signal.SIGKILL


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "zombie"
    line = next((ln for ln in text.splitlines() if ln.startswith("State:")), "")
    return line.lower()


def _waiting(tmp_path: Path, **over: object) -> dict[str, object]:
    """A site that keeps trying an unreachable coordinator until it is stopped."""
    from tutela.server import pki

    if not (tmp_path / "pki").exists():
        pki.init_ca(tmp_path / "pki")
    (tmp_path / "policy.toml").write_text("[limits]\nmax_local_epochs = 1\n")
    (tmp_path / "data.csv").write_text("age,outcome\n50,1\n")
    over.setdefault("ca_file", pki.PkiLayout(tmp_path / "pki").ca.cert)
    # with an enrolment token the site keeps asking the (unreachable) coordinator for a
    # certificate until it is stopped
    return _kwargs(tmp_path, enrol_token="tok-unused", **over)
