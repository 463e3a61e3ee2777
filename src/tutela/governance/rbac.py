"""Role-based access control: roles map to permissions, deny by default.

Built-in roles and what they may do (:data:`DEFAULT_GRANTS`)::

    permission       admin  data-scientist  site  auditor  analyst
    study:create       x          x
    study:read         x          x          x       x
    study:control      x          x
    site:enroll        x                     x
    site:manage        x
    round:submit                             x
    model:read         x          x          x
    query:run                     x                          x
    ledger:read        x          x                  x
    audit:read         x                             x
    keys:manage        x
    config:write       x
    users:manage       x

A deployment extends or replaces this with a TOML file::

    extends_default = true            # false: start from no grants at all

    [roles.site]                      # adds to the built-in site role
    permissions = ["ledger:read@site/{site}/*"]

    [roles.steward]                   # a new role
    inherits = ["auditor"]
    permissions = ["config:write"]

    [roles.data-scientist]
    replace = true                    # drop the built-in grants of this role
    permissions = ["study:read", "model:read"]

    [principals.alice]
    roles = ["admin"]
    [principals.st-marys]
    roles = ["site"]
    site = "st-marys"

A grant ``"perm@pattern"`` only applies to resources matching the glob ``pattern``
(``fnmatch``, case-sensitive) after ``{principal}`` and ``{site}`` are replaced by the
principal's name and site; a scoped grant never matches a check without a resource.
Custom permissions (``"domain:action"``, lowercase) may be granted and checked like the
built-in ones.

Security:
    Anything not explicitly granted is denied: unknown roles, unknown permissions,
    principals without roles, scoped grants without a resource or for a principal without
    a site. Decisions are a pure function of policy and request.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Protocol

from tutela.errors import ConfigError, PermissionDenied

__all__ = [
    "DEFAULT_GRANTS",
    "DEFAULT_POLICY",
    "AuditSink",
    "Grant",
    "Permission",
    "Principal",
    "RbacPolicy",
    "Role",
    "check",
]

_PERMISSION_RE = re.compile(r"^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*$")
_ROLE_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


class Permission(StrEnum):
    """Built-in permissions; a coordinator endpoint declares the one it needs."""

    STUDY_CREATE = "study:create"
    STUDY_READ = "study:read"
    STUDY_CONTROL = "study:control"
    SITE_ENROLL = "site:enroll"
    SITE_MANAGE = "site:manage"
    ROUND_SUBMIT = "round:submit"
    MODEL_READ = "model:read"
    QUERY_RUN = "query:run"
    LEDGER_READ = "ledger:read"
    AUDIT_READ = "audit:read"
    KEYS_MANAGE = "keys:manage"
    CONFIG_WRITE = "config:write"
    USERS_MANAGE = "users:manage"


class Role(StrEnum):
    """Built-in roles."""

    ADMIN = "admin"
    DATA_SCIENTIST = "data-scientist"
    SITE = "site"
    AUDITOR = "auditor"
    ANALYST = "analyst"


P = Permission
DEFAULT_GRANTS: Mapping[str, frozenset[str]] = {
    Role.ADMIN: frozenset(
        {
            P.STUDY_CREATE,
            P.STUDY_READ,
            P.STUDY_CONTROL,
            P.SITE_ENROLL,
            P.SITE_MANAGE,
            P.MODEL_READ,
            P.LEDGER_READ,
            P.AUDIT_READ,
            P.KEYS_MANAGE,
            P.CONFIG_WRITE,
            P.USERS_MANAGE,
        }
    ),
    Role.DATA_SCIENTIST: frozenset(
        {P.STUDY_CREATE, P.STUDY_READ, P.STUDY_CONTROL, P.MODEL_READ, P.QUERY_RUN, P.LEDGER_READ}
    ),
    Role.SITE: frozenset({P.SITE_ENROLL, P.ROUND_SUBMIT, P.STUDY_READ, P.MODEL_READ}),
    Role.AUDITOR: frozenset({P.STUDY_READ, P.LEDGER_READ, P.AUDIT_READ}),
    Role.ANALYST: frozenset({P.QUERY_RUN}),
}
"""The built-in role → permission table (see the module docstring)."""


@dataclass(frozen=True)
class Principal:
    """Who asks: a user, service or site, with its roles and (for sites) its site id."""

    name: str
    roles: frozenset[str]
    site: str | None = None

    def __init__(self, name: str, roles: Iterable[str], site: str | None = None) -> None:
        if not name:
            raise ValueError("principal name must not be empty")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "roles", frozenset(str(r) for r in roles))
        object.__setattr__(self, "site", site)


@dataclass(frozen=True)
class Grant:
    """One permission, optionally limited to resources matching a glob pattern."""

    permission: str
    resource: str | None = None

    @classmethod
    def parse(cls, text: str) -> Grant:
        """Parse ``"perm"`` or ``"perm@pattern"``.

        Raises:
            ValueError: malformed permission or empty pattern.
        """
        perm, sep, pattern = text.partition("@")
        _check_permission(perm)
        if sep and not pattern:
            raise ValueError(f"empty resource pattern in grant {text!r}")
        return cls(perm, pattern if sep else None)

    def matches(self, principal: Principal, resource: str | None) -> bool:
        """Whether this grant covers ``resource`` for ``principal``."""
        if self.resource is None:
            return True
        if resource is None:
            return False
        pattern = self.resource
        if "{site}" in pattern:
            if principal.site is None:
                return False
            pattern = pattern.replace("{site}", _escape_glob(principal.site))
        pattern = pattern.replace("{principal}", _escape_glob(principal.name))
        return fnmatchcase(resource, pattern)

    def __str__(self) -> str:
        return self.permission if self.resource is None else f"{self.permission}@{self.resource}"


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _check_permission(perm: str) -> str:
    if not isinstance(perm, str) or not _PERMISSION_RE.match(perm):
        raise ValueError(f"malformed permission {perm!r} (expected 'domain:action')")
    return perm


class AuditSink(Protocol):
    """Where denials are recorded (an :class:`~tutela.governance.audit.AuditLog` fits)."""

    def append(
        self,
        actor: str,
        action: str,
        resource: str | None,
        outcome: str,
        details: Mapping[str, Any] | None = None,
    ) -> int: ...


@dataclass(frozen=True)
class RbacPolicy:
    """Roles → grants, plus optional named principals. Deny by default."""

    roles: Mapping[str, tuple[Grant, ...]]
    principals: Mapping[str, Principal] = field(default_factory=dict)

    @classmethod
    def default(cls) -> RbacPolicy:
        """The built-in policy (:data:`DEFAULT_GRANTS`)."""
        roles = {
            str(role): tuple(Grant(str(p)) for p in sorted(perms))
            for role, perms in DEFAULT_GRANTS.items()
        }
        return cls(roles)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> RbacPolicy:
        """Load a policy file (see the module docstring for the format).

        Raises:
            ConfigError: unreadable TOML or an invalid entry (the message names the key).
        """
        try:
            doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
        return cls.from_mapping(doc, source=str(path))

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], *, source: str = "policy") -> RbacPolicy:
        """Build a policy from a parsed TOML/JSON document."""
        known = {"extends_default", "roles", "principals"}
        for key in doc:
            if key not in known:
                raise ConfigError(f"{source}: unknown key {key!r}")
        extends = doc.get("extends_default", True)
        if not isinstance(extends, bool):
            raise ConfigError(f"{source}: extends_default must be true or false")
        base = cls.default().roles if extends else {}
        roles: dict[str, list[Grant]] = {name: list(grants) for name, grants in base.items()}
        raw_roles = doc.get("roles", {})
        if not isinstance(raw_roles, dict):
            raise ConfigError(f"{source}: [roles] must be a table")
        inherits: dict[str, list[str]] = {}
        for name, spec in raw_roles.items():
            where = f"{source}: roles.{name}"
            if not _ROLE_RE.match(name):
                raise ConfigError(f"{where}: invalid role name")
            if not isinstance(spec, dict):
                raise ConfigError(f"{where}: must be a table")
            for key in spec:
                if key not in {"permissions", "inherits", "replace"}:
                    raise ConfigError(f"{where}: unknown key {key!r}")
            perms = spec.get("permissions", [])
            if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
                raise ConfigError(f"{where}.permissions: must be a list of strings")
            try:
                grants = [Grant.parse(p) for p in perms]
            except ValueError as exc:
                raise ConfigError(f"{where}.permissions: {exc}") from exc
            replace = spec.get("replace", False)
            if not isinstance(replace, bool):
                raise ConfigError(f"{where}.replace: must be true or false")
            roles[name] = grants if replace else [*roles.get(name, []), *grants]
            parents = spec.get("inherits", [])
            if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
                raise ConfigError(f"{where}.inherits: must be a list of role names")
            inherits[name] = parents
        for name, parents in inherits.items():
            for parent in parents:
                if parent not in roles:
                    raise ConfigError(f"{source}: roles.{name}.inherits: unknown role {parent!r}")
        resolved = {name: tuple(_resolve(name, roles, inherits, ())) for name in roles}
        principals: dict[str, Principal] = {}
        raw_principals = doc.get("principals", {})
        if not isinstance(raw_principals, dict):
            raise ConfigError(f"{source}: [principals] must be a table")
        for pname, spec in raw_principals.items():
            where = f"{source}: principals.{pname}"
            if not isinstance(spec, dict):
                raise ConfigError(f"{where}: must be a table")
            proles = spec.get("roles", [])
            if not isinstance(proles, list) or not all(isinstance(r, str) for r in proles):
                raise ConfigError(f"{where}.roles: must be a list of role names")
            for role in proles:
                if role not in resolved:
                    raise ConfigError(f"{where}.roles: unknown role {role!r}")
            site = spec.get("site")
            if site is not None and not isinstance(site, str):
                raise ConfigError(f"{where}.site: must be a string")
            principals[pname] = Principal(pname, proles, site)
        return cls(resolved, principals)

    def grants_of(self, role: str) -> tuple[Grant, ...]:
        """Grants of a role (empty for an unknown role)."""
        return self.roles.get(role, ())

    def principal(self, name: str) -> Principal:
        """A principal declared in the policy file.

        Raises:
            PermissionDenied: no such principal (unknown callers get nothing).
        """
        try:
            return self.principals[name]
        except KeyError:
            raise PermissionDenied(f"unknown principal {name!r}") from None

    def allows(
        self, principal: Principal, permission: Permission | str, resource: str | None = None
    ) -> bool:
        """Whether ``principal`` holds ``permission`` (on ``resource``, if given)."""
        perm = _check_permission(str(permission))
        return any(
            grant.permission == perm and grant.matches(principal, resource)
            for role in principal.roles
            for grant in self.grants_of(role)
        )

    def check(
        self,
        principal: Principal,
        permission: Permission | str,
        resource: str | None = None,
        *,
        audit: AuditSink | None = None,
    ) -> None:
        """Allow silently or raise :class:`PermissionDenied`; denials go to ``audit`` if given.

        Raises:
            PermissionDenied: the principal lacks the permission (message names principal,
                roles, permission, resource and which roles would grant it).
            ValueError: ``permission`` is not of the form ``domain:action``.
        """
        perm = str(permission)
        if self.allows(principal, perm, resource):
            return
        holders = sorted(
            role for role, grants in self.roles.items() if any(g.permission == perm for g in grants)
        )
        roles = ", ".join(sorted(principal.roles)) or "none"
        target = f" on {resource!r}" if resource is not None else ""
        hint = f"; granted to roles: {', '.join(holders)}" if holders else "; no role grants it"
        message = f"{principal.name!r} (roles: {roles}) lacks permission {perm!r}{target}{hint}"
        if audit is not None:
            audit.append(
                principal.name,
                f"access:{perm}",
                resource,
                "denied",
                {"roles": sorted(principal.roles), "site": principal.site},
            )
        raise PermissionDenied(message)


def _resolve(
    name: str,
    roles: Mapping[str, list[Grant]],
    inherits: Mapping[str, list[str]],
    seen: tuple[str, ...],
) -> list[Grant]:
    if name in seen:
        raise ConfigError(f"role inheritance cycle: {' -> '.join((*seen, name))}")
    out = list(roles.get(name, []))
    for parent in inherits.get(name, []):
        for grant in _resolve(parent, roles, inherits, (*seen, name)):
            if grant not in out:
                out.append(grant)
    return out


DEFAULT_POLICY = RbacPolicy.default()


def check(
    principal: Principal,
    permission: Permission | str,
    resource: str | None = None,
    *,
    policy: RbacPolicy = DEFAULT_POLICY,
    audit: AuditSink | None = None,
) -> None:
    """Check ``permission`` for ``principal`` under ``policy`` (the built-in one by default).

    Raises:
        PermissionDenied: the permission is not granted.
    """
    policy.check(principal, permission, resource, audit=audit)
