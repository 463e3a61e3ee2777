"""A real coordinator (TLS, SQLite) and parties as separate ``tutela smpc`` processes."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from tutela.server import pki
from tutela.server.serve import BackgroundServer, ServerSettings

SITES = ("hospital-a", "hospital-b", "dealer", "hospital-c", "stranger")


@dataclass
class Deployment:
    """A coordinator and the PKI of its sites."""

    server: BackgroundServer
    pki_dir: Path
    admin_token: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ca(self) -> Path:
        return pki.PkiLayout(self.pki_dir).ca.cert

    def credentials(self, site: str) -> list[str]:
        paths = pki.PkiLayout(self.pki_dir).site(site)
        return ["--coordinator", self.url, "--ca", str(self.ca), "--cert", str(paths.cert),
                "--key", str(paths.key)]  # fmt: skip

    def audit(self) -> list[dict[str, object]]:
        assert self.server.coordinator is not None
        return self.server.coordinator.audit_events(limit=10_000)


def make_pki(root: Path) -> Path:
    pki.init_ca(root)
    pki.issue_to_files(root, kind="server", name="localhost", sans=["127.0.0.1"])
    for name in SITES:
        pki.issue_to_files(root, kind="site", name=name)
    return root


def start(tmp: Path, pki_dir: Path, active: Sequence[str] = SITES[:4]) -> Deployment:
    server = BackgroundServer(
        ServerSettings(tmp / "data", pki_dir, port=0, tick_interval=0.05)
    ).start()
    assert server.admin_token is not None
    ctx = ssl.create_default_context(cafile=str(pki.PkiLayout(pki_dir).ca.cert))
    with httpx.Client(base_url=server.url, verify=ctx) as c:
        for name in active:
            r = c.post(
                f"/v1/admin/sites/{name}/activate",
                headers={"Authorization": f"Bearer {server.admin_token}"},
            )
            assert r.status_code == 204, r.text
    return Deployment(server, pki_dir, server.admin_token)


def party(args: Sequence[str]) -> subprocess.Popen[str]:
    """``python -m tutela smpc ARGS`` in its own process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tutela", "smpc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(
    procs: Sequence[subprocess.Popen[str]], timeout: float = 600
) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def write_csv(path: Path, rows: Sequence[dict[str, object]]) -> Path:
    pd.DataFrame(list(rows)).to_csv(path, index=False)
    return path


def stopped(deployment: Deployment) -> Iterator[None]:
    try:
        yield
    finally:
        deployment.server.stop()
