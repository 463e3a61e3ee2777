"""Governance: encryption at rest, access control, tamper-evident audit, minimisation, compliance.

- :mod:`~tutela.governance.envelope`: AES-256-GCM envelope encryption under a keyring
  (:class:`Keyring`, :class:`Envelope`), rotation by re-wrapping data keys.
- :mod:`~tutela.governance.rbac`: roles, permissions (:class:`Permission`), deny-by-default
  :func:`check`.
- :mod:`~tutela.governance.audit`: RFC 6962/9162 Merkle audit log (:class:`AuditLog`) with
  C2SP checkpoints (:mod:`~.checkpoint`), inclusion and consistency proofs; :mod:`~.merkle`
  the tree; :mod:`~.trust` the audit-signing keys an auditor pinned (:class:`TrustStore`).
- :mod:`~tutela.governance.minimisation`: the site policy (:class:`SitePolicy`: purposes,
  privacy floor, task limits), :func:`minimise`.
- :mod:`~tutela.governance.site_report`: a site's signed report of the policy it enforced and
  the privacy it spent (:func:`sign_site_report`, :func:`verify_site_report`).
- :mod:`~tutela.governance.comply`: GDPR / HIPAA / CCPA control checks on a run directory.
"""

from __future__ import annotations

from tutela.governance.audit import (
    AuditLog,
    AuditRecord,
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    Outcome,
    VerificationReport,
    VerifierKey,
    generate_signing_key,
    load_signing_key,
    public_key_bytes,
    verify_log,
)
from tutela.governance.comply import ComplianceReport, Framework, check_run
from tutela.governance.envelope import (
    Envelope,
    KeyInfo,
    Keyring,
    KeyState,
    generate_keyfile,
    read_header,
)
from tutela.governance.minimisation import (
    MinimisationRecord,
    PolicyDecision,
    SitePolicy,
    StudyRequest,
    is_direct_identifier,
    minimise,
)
from tutela.governance.rbac import DEFAULT_POLICY, Permission, Principal, RbacPolicy, Role, check
from tutela.governance.site_report import sign_site_report, verify_site_report
from tutela.governance.trust import TrustStore

__all__ = [
    "DEFAULT_POLICY",
    "AuditLog",
    "AuditRecord",
    "Checkpoint",
    "ComplianceReport",
    "ConsistencyProof",
    "Envelope",
    "Framework",
    "InclusionProof",
    "KeyInfo",
    "KeyState",
    "Keyring",
    "MinimisationRecord",
    "Outcome",
    "Permission",
    "PolicyDecision",
    "Principal",
    "RbacPolicy",
    "Role",
    "SitePolicy",
    "StudyRequest",
    "TrustStore",
    "VerificationReport",
    "VerifierKey",
    "check",
    "check_run",
    "generate_keyfile",
    "generate_signing_key",
    "is_direct_identifier",
    "load_signing_key",
    "minimise",
    "public_key_bytes",
    "read_header",
    "sign_site_report",
    "verify_log",
    "verify_site_report",
]
