"""RBAC: the full role x permission matrix, deny by default, policy files, scoped grants."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutela.errors import ConfigError, PermissionDenied
from tutela.governance.rbac import (
    DEFAULT_POLICY,
    Grant,
    Permission,
    Principal,
    RbacPolicy,
    Role,
    check,
)

# The intended matrix, written out independently of DEFAULT_GRANTS (x = allowed).
MATRIX = """
permission      admin data-scientist site auditor analyst
study:create      x         x         .     .     .
study:read        x         x         x     x     .
study:control     x         x         .     .     .
site:enroll       x         .         x     .     .
site:manage       x         .         .     .     .
round:submit      .         .         x     .     .
model:read        x         x         x     .     .
query:run         .         x         .     .     x
ledger:read       x         x         .     x     .
audit:read        x         .         .     x     .
keys:manage       x         .         .     .     .
config:write      x         .         .     .     .
users:manage      x         .         .     .     .
"""


def _matrix() -> dict[tuple[str, str], bool]:
    lines = MATRIX.strip().splitlines()
    roles = lines[0].split()[1:]
    out = {}
    for line in lines[1:]:
        perm, *cells = line.split()
        for role, cell in zip(roles, cells, strict=True):
            out[(role, perm)] = cell == "x"
    return out


def test_matrix_covers_every_role_and_permission() -> None:
    matrix = _matrix()
    assert {r for r, _ in matrix} == {r.value for r in Role}
    assert {p for _, p in matrix} == {p.value for p in Permission}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_role_permission_matrix(role: Role, permission: Permission) -> None:
    expected = _matrix()[(role.value, permission.value)]
    who = Principal("p", [role], site="st-marys")
    assert DEFAULT_POLICY.allows(who, permission) is expected
    assert DEFAULT_POLICY.allows(who, permission, "study/s1") is expected
    if expected:
        check(who, permission)
    else:
        with pytest.raises(PermissionDenied):
            check(who, permission, "study/s1")


def test_deny_by_default() -> None:
    for perm in Permission:
        with pytest.raises(PermissionDenied):
            check(Principal("nobody", []), perm)
        with pytest.raises(PermissionDenied):
            check(Principal("ghost", ["no-such-role"]), perm)
    with pytest.raises(PermissionDenied):
        check(Principal("root", [Role.ADMIN]), "reactor:meltdown")
    with pytest.raises(ValueError):
        check(Principal("root", [Role.ADMIN]), "not a permission")
    assert RbacPolicy.from_mapping({"extends_default": False}).roles == {}


def test_denial_message_is_clear() -> None:
    with pytest.raises(PermissionDenied) as info:
        check(Principal("bob", [Role.AUDITOR]), Permission.KEYS_MANAGE, "keyring/main")
    assert str(info.value) == (
        "'bob' (roles: auditor) lacks permission 'keys:manage' on 'keyring/main'; "
        "granted to roles: admin"
    )


def test_permission_is_a_str_enum_usable_as_endpoint_metadata() -> None:
    assert Permission.AUDIT_READ == "audit:read"
    assert Permission("round:submit") is Permission.ROUND_SUBMIT


def test_roles_combine() -> None:
    both = Principal("carol", [Role.AUDITOR, Role.SITE], site="a")
    assert DEFAULT_POLICY.allows(both, Permission.AUDIT_READ)
    assert DEFAULT_POLICY.allows(both, Permission.ROUND_SUBMIT)
    assert not DEFAULT_POLICY.allows(both, Permission.KEYS_MANAGE)


POLICY_TOML = """
[roles.site]
permissions = ["ledger:read@site/{site}/*"]

[roles.steward]
inherits = ["auditor"]
permissions = ["config:write", "dpia:approve"]

[roles.data-scientist]
replace = true
permissions = ["study:read"]

[principals.alice]
roles = ["admin"]

[principals.st-marys]
roles = ["site"]
site = "st-marys"
"""


def test_policy_file_extends_replaces_and_scopes(tmp_path: Path) -> None:
    path = tmp_path / "rbac.toml"
    path.write_text(POLICY_TOML)
    policy = RbacPolicy.from_toml(path)
    site = policy.principal("st-marys")
    assert site.site == "st-marys"
    # scoped grant: own site only, never without a resource
    assert policy.allows(site, Permission.LEDGER_READ, "site/st-marys/ledger")
    assert not policy.allows(site, Permission.LEDGER_READ, "site/guys/ledger")
    assert not policy.allows(site, Permission.LEDGER_READ)
    assert not policy.allows(Principal("x", ["site"]), Permission.LEDGER_READ, "site/st-marys/a")
    assert policy.allows(site, Permission.ROUND_SUBMIT)  # built-in grants kept
    # new role with inheritance and a custom permission
    steward = Principal("s", ["steward"])
    assert policy.allows(steward, Permission.AUDIT_READ)
    assert policy.allows(steward, "dpia:approve")
    assert not policy.allows(steward, Permission.KEYS_MANAGE)
    # replaced role
    ds = Principal("d", [Role.DATA_SCIENTIST])
    assert policy.allows(ds, Permission.STUDY_READ)
    assert not policy.allows(ds, Permission.STUDY_CREATE)
    with pytest.raises(PermissionDenied):
        policy.principal("mallory")


def test_site_placeholder_cannot_be_widened_by_a_glob_in_the_site_name() -> None:
    policy = RbacPolicy.from_mapping(
        {"roles": {"site": {"permissions": ["ledger:read@site/{site}"]}}}
    )
    sneaky = Principal("x", ["site"], site="*")
    assert not policy.allows(sneaky, Permission.LEDGER_READ, "site/other")
    assert policy.allows(sneaky, Permission.LEDGER_READ, "site/*")


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"rolez": {}}, "unknown key 'rolez'"),
        ({"roles": {"a": {"permissions": ["nope"]}}}, "roles.a.permissions"),
        ({"roles": {"a": {"permissions": ["x:y@"]}}}, "empty resource pattern"),
        ({"roles": {"a": {"inherits": ["zzz"]}}}, "unknown role 'zzz'"),
        ({"roles": {"a": {"inherits": ["b"]}, "b": {"inherits": ["a"]}}}, "cycle"),
        ({"roles": {"a": {"colour": 1}}}, "unknown key 'colour'"),
        ({"principals": {"p": {"roles": ["wizard"]}}}, "principals.p.roles"),
    ],
)
def test_policy_errors_name_the_key(doc: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        RbacPolicy.from_mapping(doc)


def test_invalid_toml(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text("[roles\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        RbacPolicy.from_toml(tmp_path / "p.toml")


def test_grant_parse() -> None:
    assert Grant.parse("audit:read@study/*") == Grant("audit:read", "study/*")
    assert str(Grant.parse("audit:read")) == "audit:read"


class _Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[object, ...]] = []

    def append(self, actor, action, resource, outcome, details=None):  # type: ignore[no-untyped-def]
        self.rows.append((actor, action, resource, outcome, details))
        return len(self.rows) - 1


def test_denials_are_recorded_and_grants_are_not() -> None:
    sink = _Recorder()
    check(Principal("a", [Role.ADMIN]), Permission.KEYS_MANAGE, audit=sink)
    with pytest.raises(PermissionDenied):
        check(Principal("b", [Role.SITE], site="x"), Permission.KEYS_MANAGE, "keyring", audit=sink)
    assert sink.rows == [
        ("b", "access:keys:manage", "keyring", "denied", {"roles": ["site"], "site": "x"})
    ]
