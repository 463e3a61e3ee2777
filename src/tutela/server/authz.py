"""Who may call what on the coordinator: principals, roles and endpoint permissions.

Admins, data scientists and auditors authenticate with bearer tokens; sites with a client
certificate (mutual TLS) whose common name is an enrolled site. Every endpoint declares one
:class:`Permission`; a principal's role grants a set of permissions; everything else is
denied (deny by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tutela.errors import PermissionDenied


class Role(StrEnum):
    """Roles known to the coordinator."""

    ADMIN = "admin"
    DATA_SCIENTIST = "data-scientist"
    AUDITOR = "auditor"
    SITE = "site"


class Permission(StrEnum):
    """One permission per kind of endpoint."""

    STUDY_CREATE = "study:create"
    STUDY_CONTROL = "study:control"
    STUDY_READ = "study:read"
    PRIVACY_READ = "privacy:read"
    AUDIT_READ = "audit:read"
    SITE_MANAGE = "site:manage"
    SITE_PARTICIPATE = "site:participate"
    SITE_ENROL = "site:enrol"
    PUBLIC = "public"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        {
            Permission.STUDY_CREATE,
            Permission.STUDY_CONTROL,
            Permission.STUDY_READ,
            Permission.PRIVACY_READ,
            Permission.AUDIT_READ,
            Permission.SITE_MANAGE,
        }
    ),
    Role.DATA_SCIENTIST: frozenset(
        {Permission.STUDY_CREATE, Permission.STUDY_CONTROL, Permission.STUDY_READ, Permission.PRIVACY_READ}
    ),
    Role.AUDITOR: frozenset({Permission.STUDY_READ, Permission.PRIVACY_READ, Permission.AUDIT_READ}),
    Role.SITE: frozenset({Permission.SITE_PARTICIPATE}),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    role: Role

    @property
    def label(self) -> str:
        """``role:name`` as written into the audit log."""
        return f"{self.role.value}:{self.name}"


ANONYMOUS_LABEL = "anonymous"


def allowed(role: Role, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission`` (PUBLIC and SITE_ENROL need no role)."""
    if permission in (Permission.PUBLIC, Permission.SITE_ENROL):
        return True
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


def check(principal: Principal, permission: Permission, resource: str) -> None:
    """Raise :class:`PermissionDenied` unless ``principal`` holds ``permission``."""
    if not allowed(principal.role, permission):
        raise PermissionDenied(
            f"{principal.label} lacks permission {permission.value} on {resource}"
        )
