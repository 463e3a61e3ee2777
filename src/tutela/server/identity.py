"""Who may talk to the coordinator: bearer tokens for people, enrolled sites for sites.

People get bearer tokens (stored only as hashes). Sites are registered by an admin, which
yields a one-time enrolment token that the site exchanges with a CSR for a certificate
signed by the deployment CA (or an admin activates a site whose certificate was issued
offline). A verified client certificate maps to a site principal only while the site is
active, and only the certificate issued at enrolment counts.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tutela.errors import PermissionDenied, ServiceError
from tutela.server.authz import Principal, Role
from tutela.server.batching import Batcher, Slot
from tutela.server.core import ANON, Core, token_hash
from tutela.server.store import SiteRow, TokenRow

Signer = Callable[[bytes, str], bytes]

SITE_CACHE_S = 5.0
"""How long a verified site certificate is recognised without reading the store again.

Any change to a site written through the coordinator (enrolment, activation, a status
change) forgets every recognised certificate at once; only a change made to the database
behind the coordinator's back waits for this long."""

_SITES_CHANGED = "tutela.sites.changed"
"""Key in ``Session.info``: the transaction wrote a site."""


@dataclass
class Identity:
    """Tokens, principals and site enrolment.

    Args:
        core: the shared state.
        signer: signs enrolment CSRs (``(csr_pem, site) -> cert_pem``); None disables
            token enrolment (certificates are then issued offline with ``tutela pki``).
    """

    core: Core
    signer: Signer | None = None
    _recognised: dict[tuple[str, str], float] = field(default_factory=dict, init=False)
    _generation: int = field(default=0, init=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _lookups: Batcher[tuple[str, str], Principal | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lookups = Batcher(self._serve_lookups)
        sessions = self.core.store.write_sessions
        event.listen(sessions, "after_flush", self._forget_if_sites_changed)
        event.listen(sessions, "after_commit", self._forget_after_site_change)

    def _forget_if_sites_changed(self, session: Session, _context: object) -> None:
        changed = (*session.new, *session.dirty, *session.deleted)
        if any(isinstance(obj, SiteRow) for obj in changed):
            session.info[_SITES_CHANGED] = True
            self._forget()

    def _forget_after_site_change(self, session: Session) -> None:
        if session.info.pop(_SITES_CHANGED, False):
            self._forget()  # again: a read between the flush and the commit saw the old row

    def _forget(self) -> None:
        with self._cache_lock:
            self._generation += 1
            self._recognised.clear()

    # tokens and principals --------------------------------------------------------------

    def create_token(
        self, role: Role, subject: str, *, actor: str = "system", ttl_s: float | None = None
    ) -> str:
        """Mint a bearer token for an admin, data scientist or auditor; returns it once."""
        if role is Role.SITE:
            raise ValueError("sites authenticate with certificates, not bearer tokens")
        token = "tta_" + secrets.token_urlsafe(32)
        now = self.core.clock()
        with self.core.store.session() as s:
            s.add(
                TokenRow(
                    token_hash=token_hash(token),
                    kind="bearer",
                    role=role.value,
                    subject=subject,
                    created_at=now,
                    expires_at=now + ttl_s if ttl_s else None,
                )
            )
            self.core.audit(
                actor,
                "token.create",
                f"principal/{subject}",
                detail={"role": role.value},
                session=s,
            )
        return token

    def principal_for_token(self, token: str) -> Principal | None:
        """The principal of a bearer token, or None if unknown or expired."""
        with self.core.store.read() as s:
            row = s.scalar(
                select(TokenRow).where(
                    TokenRow.token_hash == token_hash(token), TokenRow.kind == "bearer"
                )
            )
            if row is None or (row.expires_at is not None and row.expires_at < self.core.clock()):
                return None
            return Principal(row.subject, Role(row.role))

    def recognised_site(self, common_name: str, fingerprint: str) -> Principal | None:
        """The site principal of a certificate :meth:`principal_for_site` accepted within the
        last :data:`SITE_CACHE_S` (and no site changed since), else None; never reads the
        store, so the event loop may call it."""
        with self._cache_lock:
            if self._recognised.get((common_name, fingerprint), 0.0) > time.monotonic():
                return Principal(common_name, Role.SITE)
        return None

    def principal_for_site(self, common_name: str, fingerprint: str) -> Principal | None:
        """The site principal of a verified client certificate, or None if not enrolled.

        Security: the certificate was verified against the CA during the handshake; here
        its common name must be an active site. If the site enrolled by token, only the
        certificate issued at enrolment (its fingerprint) is accepted. A certificate found
        acceptable is recognised for :data:`SITE_CACHE_S` without another read, unless a
        site changes through the coordinator first.
        """
        recognised = self.recognised_site(common_name, fingerprint)
        if recognised is not None:
            return recognised
        # certificates looked up at once share one read (sites that start a round together)
        return self._lookups((common_name, fingerprint))

    def _serve_lookups(self, slots: list[Slot[tuple[str, str], Principal | None]]) -> None:
        now = time.monotonic()
        with self._cache_lock:
            generation = self._generation
        names = sorted({name for name, _ in (slot.item for slot in slots)})
        with self.core.store.read() as s:
            rows = {
                row.name: (row.status, row.cert_fingerprint)
                for row in s.execute(
                    select(SiteRow.name, SiteRow.status, SiteRow.cert_fingerprint).where(
                        SiteRow.name.in_(names)
                    )
                )
            }
        accepted: list[tuple[str, str]] = []
        for slot in slots:
            name, fingerprint = slot.item
            status, pinned = rows.get(name, (None, None))
            if status != "active" or (pinned is not None and pinned != fingerprint):
                slot.resolve(None)
                continue
            accepted.append(slot.item)
            slot.resolve(Principal(name, Role.SITE))
        with self._cache_lock:
            if generation == self._generation:  # no site changed while this read ran
                for key in accepted:
                    self._recognised[key] = now + SITE_CACHE_S

    # sites ------------------------------------------------------------------------------

    def register_site(self, actor: Principal, name: str, *, ttl_s: float = 24 * 3600) -> str:
        """Register a site and return its one-time enrolment token."""
        from tutela.server.pki import validate_site_name

        validate_site_name(name)
        token = "tte_" + secrets.token_urlsafe(32)
        now = self.core.clock()
        with self.core.store.session() as s:
            row = s.get(SiteRow, name)
            if row is None:
                s.add(SiteRow(name=name, status="pending", created_at=now))
            s.add(
                TokenRow(
                    token_hash=token_hash(token),
                    kind="enrol",
                    role=Role.SITE.value,
                    subject=name,
                    created_at=now,
                    expires_at=now + ttl_s,
                )
            )
            self.core.audit(actor.label, "site.register", f"site/{name}", session=s)
        return token

    def activate_site(self, actor: Principal, name: str) -> None:
        """Accept a site whose certificate was issued offline (``tutela pki issue --site``)."""
        from tutela.server.pki import validate_site_name

        validate_site_name(name)
        now = self.core.clock()
        with self.core.store.session() as s:
            row = s.get(SiteRow, name)
            if row is None:
                s.add(SiteRow(name=name, status="active", created_at=now, enrolled_at=now))
            else:
                row.status = "active"
            self.core.audit(actor.label, "site.activate", f"site/{name}", session=s)

    def enrol(self, token: str, csr_pem: bytes) -> bytes:
        """Exchange a one-time enrolment token and a CSR for a site certificate.

        Raises:
            PermissionDenied: unknown, used or expired token.
            ServiceError: enrolment is disabled (no CA key on this coordinator).
        """
        if self.signer is None:
            raise ServiceError(
                "this coordinator does not sign certificates; ask for an offline one"
            )
        cert_pem = self._enrol(token, csr_pem, self.core.clock())
        if cert_pem is None:
            # In its own transaction, after the refused one ended: the record must stay.
            self.core.audit_denial(ANON, "site.enrol", "site/?", {"reason": "invalid token"})
            raise PermissionDenied("the enrolment token is unknown, used or expired")
        return cert_pem

    def _enrol(self, token: str, csr_pem: bytes, now: float) -> bytes | None:
        """Issue the certificate in one transaction; None (nothing changed) if the token is
        unknown, used or expired."""
        from cryptography import x509

        from tutela.server.pki import fingerprint

        assert self.signer is not None
        with self.core.store.session() as s:
            row = s.scalar(
                select(TokenRow).where(
                    TokenRow.token_hash == token_hash(token), TokenRow.kind == "enrol"
                )
            )
            if row is None or row.used_at is not None or (row.expires_at or 0) < now:
                return None
            site = row.subject
            cert_pem = self.signer(csr_pem, site)
            cert = x509.load_pem_x509_certificate(cert_pem)
            row.used_at = now
            site_row = s.get(SiteRow, site)
            if site_row is None:  # pragma: no cover - created with the token
                site_row = SiteRow(name=site, status="active", created_at=now)
                s.add(site_row)
            site_row.status = "active"
            site_row.cert_fingerprint = fingerprint(cert)
            site_row.enrolled_at = now
            self.core.audit(f"site:{site}", "site.enrol", f"site/{site}", session=s)
        return cert_pem

    def list_sites(self) -> list[dict[str, Any]]:
        """Every known site."""
        with self.core.store.read() as s:
            return [
                {"name": r.name, "status": r.status, "enrolled_at": r.enrolled_at}
                for r in s.scalars(select(SiteRow).order_by(SiteRow.name))
            ]
