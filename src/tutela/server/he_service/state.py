"""What an HE service stores: owners' public bundles, encrypted tables, per-key budgets.

Layout of the state directory (created 0700; files written 0600 by the one private writer)::

    keys/FINGERPRINT.bundle     an owner's public bundle (public key, relin keys)
    tables/ID.table             an owner's encrypted table (ciphertexts only)
    usage.json                  rows scored per key fingerprint (the query budget)
    audit.jsonl, audit-signing.key, audit.jsonl.checkpoints   the Merkle audit log

Security: nothing stored here can decrypt anything; bundles are refused if they hold a
secret key (:class:`~tutela.he.evaluation.PublicKey`). A key's budget counts every row it
has had scored; past ``row_budget`` the service refuses, which bounds how much of the
model's input-output behaviour one key can collect (model extraction).
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tutela.errors import BudgetExceeded, DataError
from tutela.governance._files import atomic_write, private_dir
from tutela.he.ckks import CkksParams
from tutela.he.evaluation import PublicKey

__all__ = ["ServiceState"]

_TABLE_ID_BYTES = 16


@dataclass
class ServiceState:
    """The service's stored public material, with its per-key row budget."""

    root: Path
    params: CkksParams
    row_budget: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _keys: dict[bytes, PublicKey] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        private_dir(self.root)
        private_dir(self.root / "keys")
        private_dir(self.root / "tables")

    # keys --------------------------------------------------------------------------------

    def add_key(self, bundle: bytes) -> PublicKey:
        """Check and store a public bundle (idempotent)."""
        key = PublicKey(bundle, self.params)
        path = self.root / "keys" / f"{key.fingerprint.hex()}.bundle"
        with self._lock:
            if not path.exists():
                atomic_write(path, key.bundle)
            self._keys[key.fingerprint] = key
        return key

    def key(self, fingerprint: bytes) -> PublicKey:
        """A stored key.

        Raises:
            DataError: no bundle was uploaded for this fingerprint.
        """
        with self._lock:
            cached = self._keys.get(fingerprint)
        if cached is not None:
            return cached
        path = self.root / "keys" / f"{fingerprint.hex()}.bundle"
        if not path.is_file():
            raise DataError(
                f"unknown key {fingerprint.hex()[:16]}...: upload its public bundle first"
            )
        key = PublicKey(path.read_bytes(), self.params)
        with self._lock:
            self._keys[fingerprint] = key
        return key

    # budgets -----------------------------------------------------------------------------

    def _usage(self) -> dict[str, int]:
        path = self.root / "usage.json"
        if not path.exists():
            return {}
        doc = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): int(v) for k, v in doc.items()}

    def charge(self, fingerprint: bytes, rows: int) -> int:
        """Charge ``rows`` to a key's budget before they are scored; return what is left.

        Raises:
            BudgetExceeded: the key would pass its row budget (nothing is charged).
        """
        with self._lock:
            usage = self._usage()
            used = usage.get(fingerprint.hex(), 0)
            if used + rows > self.row_budget:
                raise BudgetExceeded(
                    f"this key has had {used} rows scored; {rows} more would pass its budget "
                    f"of {self.row_budget}"
                )
            usage[fingerprint.hex()] = used + rows
            atomic_write(self.root / "usage.json", json.dumps(usage, sort_keys=True).encode())
            return self.row_budget - used - rows

    # tables ------------------------------------------------------------------------------

    def add_table(self, payload: bytes) -> str:
        """Store an encrypted table (already parsed and checked by the caller); return its id."""
        table_id = secrets.token_hex(_TABLE_ID_BYTES)
        atomic_write(self.root / "tables" / f"{table_id}.table", payload)
        return table_id

    def table(self, table_id: str) -> bytes:
        """A stored table's payload.

        Raises:
            DataError: no such table.
        """
        if len(table_id) != 2 * _TABLE_ID_BYTES or not all(
            c in "0123456789abcdef" for c in table_id
        ):
            raise DataError("malformed table id")
        path = self.root / "tables" / f"{table_id}.table"
        if not path.is_file():
            raise DataError(f"no table {table_id}")
        return path.read_bytes()
