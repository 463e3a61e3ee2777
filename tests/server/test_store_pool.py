"""The coordinator's connection pool is sized from its settings (environment or explicit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutela.errors import ConfigError
from tutela.server.sealing import open_sealer
from tutela.server.store import PoolSettings, Store


def test_pool_settings_come_from_the_environment_and_bad_values_are_refused() -> None:
    assert PoolSettings.from_env({}) == PoolSettings(24, 16)
    env = {"TUTELA_DB_POOL_SIZE": "20", "TUTELA_DB_MAX_OVERFLOW": "5"}
    assert PoolSettings.from_env(env) == PoolSettings(20, 5)
    with pytest.raises(ConfigError, match="must be integers"):
        PoolSettings.from_env({"TUTELA_DB_POOL_SIZE": "many"})
    with pytest.raises(ConfigError, match="size >= 1"):
        PoolSettings(0, 4)


def test_the_store_opens_its_pool_with_those_sizes(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url, open_sealer(tmp_path / "keyring"), pool=PoolSettings(3, 2))
    try:
        assert store.engine.pool.size() == 3
        assert store.engine.pool._max_overflow == 2
    finally:
        store.close()
