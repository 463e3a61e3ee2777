"""What a site agent holds: its settings, its SecAgg+ identity key and its data file.

Privacy: the data file is read in two steps. :func:`read_site_header` reads the column names
only (no row), so the site policy can judge a study before any row is parsed;
:func:`load_site_table` then reads the columns the policy accepted, and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tutela.data.tables import read_header, read_table
from tutela.errors import ConfigError, DataError
from tutela.governance.minimisation import SitePolicy


@dataclass(frozen=True)
class AgentSettings:
    """Where the agent connects and what it holds.

    Attributes:
        coordinator: base URL (``https://host:port``).
        ca_file: the deployment's CA certificate.
        cert_file: this site's certificate (from enrolment or ``tutela pki issue --site``).
        key_file: its private key.
        data: CSV or Parquet file with the site's rows (one outcome column).
        policy: the site policy (the last word on what this site runs and shares).
        outcome: name of the outcome column.
        seed: seeds local data order (not privacy noise).
        state_dir: where the agent keeps its SecAgg+ identity key, its privacy ledgers and
            its signed reports (the data file's directory if ``None``).
        poll_interval: seconds between polls when idle and the coordinator cannot hold
            requests (an older one), or after a task the agent gave up on.
        long_poll_s: how long the coordinator may hold a task request until something
            changes (0: never held, plain polling every ``poll_interval``).
        exit_when_done: stop once every study this site joined has ended.
        max_runtime_s: stop after this long regardless.
        witness_interval_s: while rounds go by, the site witnesses the coordinator's audit
            log at most this often (it always does when a study's status changes and
            before it stops); 0 witnesses every round.
    """

    coordinator: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    data: Path
    policy: SitePolicy
    outcome: str = "outcome"
    seed: int = 0
    state_dir: Path | None = None
    poll_interval: float = 0.2
    long_poll_s: float = 25.0
    exit_when_done: bool = True
    max_runtime_s: float = 3600.0
    witness_interval_s: float = 2.0


def read_site_header(path: Path, outcome: str) -> list[str]:
    """The column names of the site's CSV or Parquet file (no row is read); checks the
    outcome column."""
    columns = read_header(path)
    if outcome not in columns:
        raise DataError(f"site data {path} has no outcome column {outcome!r}")
    return columns


def load_site_table(path: Path, outcome: str, columns: list[str]) -> pd.DataFrame:
    """Read only ``columns`` and the outcome column of the site's CSV or Parquet file.

    Call it after the site policy accepted ``columns``: no other column is ever parsed.
    """
    return read_table(path, [*columns, outcome])


def identity_key(state_dir: Path | None) -> Ed25519PrivateKey:
    """The site's long-term SecAgg+ identity key (created once, mode 0600)."""
    if state_dir is None:
        return Ed25519PrivateKey.generate()
    path = state_dir / "secagg-identity.key"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path} is not an Ed25519 key")
        return key
    key = Ed25519PrivateKey.generate()
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return key
