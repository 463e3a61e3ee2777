"""Fixtures for the coordinator tests: databases (SQLite, and PostgreSQL when available),
a PKI, a running TLS coordinator, and HTTP clients for each kind of caller."""

from __future__ import annotations

import os
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from tutela.fl.config import StudyConfig, parse_study
from tutela.fl.records import parameters_to_bytes
from tutela.governance.rbac import Role
from tutela.server import pki
from tutela.server.serve import BackgroundServer, ServerSettings

PG_ENV = "TUTELA_TEST_POSTGRES_URL"


def _backends() -> list[Any]:
    params: list[Any] = ["sqlite"]
    params.append(
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} not set"),
            ],
        )
    )
    return params


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'coordinator.db'}"
        return
    base = sa.engine.make_url(os.environ[PG_ENV])
    name = f"tutela_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    pki.init_ca(root)
    pki.issue_to_files(root, kind="server", name="localhost", sans=["127.0.0.1"])
    for name in ("hospital-1", "hospital-2", "hospital-3", "stranger"):
        pki.issue_to_files(root, kind="site", name=name)
    return root


def small_config(**training: Any) -> StudyConfig:
    return parse_study(
        {
            "data": {"dataset": "pima-diabetes", "sites": 3},
            "training": {
                "rounds": 2,
                "local_epochs": 1,
                "min_quorum": 2,
                "min_fit_sites": 2,
                **training,
            },
        }
    )


def model_params() -> dict[str, np.ndarray]:
    return {"0.weight": np.zeros((1, 7), np.float32), "0.bias": np.zeros((1,), np.float32)}


@dataclass
class Live:
    """A running coordinator plus clients for each role."""

    server: BackgroundServer
    pki_dir: Path
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ca(self) -> Path:
        return pki.PkiLayout(self.pki_dir).ca.cert

    def client(
        self, role: str | None = None, *, site: str | None = None, ca: Path | None = None
    ) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(ca or self.ca))
        headers: dict[str, str] = {}
        if site is not None:
            paths = pki.PkiLayout(self.pki_dir).site(site)
            ctx.load_cert_chain(paths.cert, paths.key)
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return httpx.Client(base_url=self.url, verify=ctx, headers=headers, timeout=30.0)

    def admin(self) -> httpx.Client:
        return self.client("admin")

    def new_study(self, config: StudyConfig | None = None, **deployment: Any) -> str:
        cfg = config or small_config()
        with self.admin() as c:
            r = c.post(
                "/v1/admin/studies",
                json={
                    "config": cfg.resolved(),
                    "deployment": {
                        "sites": ["hospital-1", "hospital-2", "hospital-3"],
                        **deployment,
                    },
                },
            )
            assert r.status_code == 201, r.text
            study_id: str = r.json()["id"]
            r = c.put(
                f"/v1/admin/studies/{study_id}/model",
                content=parameters_to_bytes(model_params()),
                headers={"Content-Type": "application/octet-stream"},
            )
            assert r.status_code == 204, r.text
        return study_id


def join_body(n: int = 50) -> dict[str, Any]:
    return {
        "accept": True,
        "num_examples": n,
        "moments": {"count": n, "total": [1.0] * 7, "total_sq": [100.0] * 7},
        "identity": "11" * 32,
    }


def start_live(tmp: Path, pki_dir: Path, db_url: str | None = None) -> Live:
    server = BackgroundServer(
        ServerSettings(tmp / "data", pki_dir, port=0, db_url=db_url, tick_interval=0.05)
    ).start()
    assert server.coordinator is not None and server.admin_token is not None
    tokens = {"admin": server.admin_token}
    for role in (Role.DATA_SCIENTIST, Role.AUDITOR):
        tokens[role.value] = server.coordinator.create_token(role, f"{role.value}-user")
    with httpx.Client(
        base_url=server.url,
        verify=ssl.create_default_context(cafile=str(pki.PkiLayout(pki_dir).ca.cert)),
    ) as c:
        for name in ("hospital-1", "hospital-2", "hospital-3"):
            r = c.post(
                f"/v1/admin/sites/{name}/activate",
                headers={"Authorization": f"Bearer {tokens['admin']}"},
            )
            assert r.status_code == 204, r.text
    return Live(server, pki_dir, tokens)


@pytest.fixture
def live(tmp_path: Path, pki_dir: Path) -> Iterator[Live]:
    handle = start_live(tmp_path, pki_dir)
    try:
        yield handle
    finally:
        handle.server.stop()
