"""Who may call what on the coordinator: principals, audiences and governance RBAC.

Every route declares one :class:`~tutela.governance.rbac.Permission` and one audience:

- ``people`` routes (``/v1/admin/...``) take a bearer token (admin, data scientist,
  auditor);
- ``sites`` routes (``/v1/site/...``) take a client certificate from the deployment's CA
  whose common name is an enrolled site (mutual TLS);
- ``anyone`` routes (health, enrolment by one-time token) take no credentials.

A call is allowed only when the credential fits the audience *and* the governance RBAC
policy (deny by default; a deployment may pass its own TOML policy) grants the
permission to the caller's role. Everything else is denied and audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tutela.governance.rbac import DEFAULT_POLICY, Permission, RbacPolicy, Role
from tutela.governance.rbac import Principal as RbacPrincipal

__all__ = ["ANONYMOUS_LABEL", "Audience", "Permission", "Principal", "RbacPolicy", "Role", "decide"]

ANONYMOUS_LABEL = "anonymous"


class Audience(StrEnum):
    """Which kind of credential a route accepts."""

    PEOPLE = "people"
    SITES = "sites"
    ANYONE = "anyone"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    role: Role

    @property
    def label(self) -> str:
        """``role:name`` as written into the audit log."""
        return f"{self.role.value}:{self.name}"

    @property
    def audience(self) -> Audience:
        """The audience this principal's credential belongs to."""
        return Audience.SITES if self.role is Role.SITE else Audience.PEOPLE

    def for_rbac(self) -> RbacPrincipal:
        """The governance RBAC view of this principal."""
        site = self.name if self.role is Role.SITE else None
        return RbacPrincipal(self.name, [self.role.value], site)


def decide(
    principal: Principal | None,
    audience: Audience,
    permission: Permission,
    resource: str,
    policy: RbacPolicy = DEFAULT_POLICY,
) -> str | None:
    """Return None if the call is allowed, else the reason it is denied."""
    if audience is Audience.ANYONE:
        return None
    if principal is None:
        return "no credentials"
    if principal.audience is not audience:
        need = "a bearer token" if audience is Audience.PEOPLE else "a site client certificate"
        return f"this endpoint is for {audience.value} and needs {need}"
    if not policy.allows(principal.for_rbac(), permission, resource):
        return f"{principal.label} lacks permission {permission.value} on {resource}"
    return None
