"""``tutela`` commands for governance: keys, encrypt/decrypt, audit, comply.

Secrets never come from the command line: a key file is named with ``--keyfile`` /
``TUTELA_KEYFILE``, the passphrase is read from ``TUTELA_PASSPHRASE`` (else prompted, hidden).
The keyring is ``--keyring PATH``, else ``TUTELA_KEYRING``, else ``keyring`` in Tutela's home
(``TUTELA_HOME``, else ``.tutela``): the same one ``tutela demo`` uses. Paths and the order in
which secrets are tried are resolved in :mod:`tutela.governance.home`.

Audit logs are trusted only under keys the auditor pinned (``tutela audit trust add``; the
trust store is resolved in :mod:`tutela.governance.home`), never a key the evidence names.
Witness keys (the sites' cosigning keys, type 0x04) are pinned the same way;
``tutela audit verify --witnesses DIR --witness-quorum K`` then requires K of them to have
cosigned the checkpoint that covers the whole log.

Exit codes: 0 success; 1 an expected failure (one ``error: ...`` line, e.g. a log that
does not verify, naming the first bad record) or a failed compliance check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from tutela.governance.audit import Checkpoint, VerifierKey
    from tutela.governance.envelope import Keyring

keys_app = typer.Typer(help="Manage the keyring that encrypts data at rest.", no_args_is_help=True)
audit_app = typer.Typer(
    help="Inspect, prove and verify tamper-evident audit logs.", no_args_is_help=True
)

KeyringOpt = Annotated[
    Path | None,
    typer.Option(
        "--keyring",
        help="Keyring file (default: $TUTELA_KEYRING, else keyring in $TUTELA_HOME or .tutela).",
        show_default=False,
    ),
]
KeyfileOpt = Annotated[
    Path | None,
    typer.Option(
        "--keyfile",
        help="Protect/open the keyring with this key file instead of a passphrase "
        "(default: $TUTELA_KEYFILE).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _prompt_passphrase(*, confirm: bool) -> str:
    entered: str = typer.prompt("Keyring passphrase", hide_input=True, confirmation_prompt=confirm)
    if not entered:
        raise ValueError("the passphrase must not be empty")
    return entered


def _open_keyring(keyring: Path | None, keyfile: Path | None) -> Keyring:
    from tutela.governance.home import open_keyring

    return open_keyring(
        keyring,
        keyfile=keyfile,
        create=False,
        prompt=lambda: _prompt_passphrase(confirm=False),
    )


# keys ---------------------------------------------------------------------------------------


@keys_app.command("init")
def keys_init(keyring: KeyringOpt = None, keyfile: KeyfileOpt = None) -> None:
    """Create a keyring with one fresh key (a missing --keyfile is generated)."""
    from tutela.governance.home import keyring_path, keyring_secret, open_keyring

    path = keyring_path(keyring)
    if path.exists():
        raise FileExistsError(f"keyring {path} already exists")
    secret = keyring_secret(path, keyfile=keyfile)
    if secret is None:
        ring = open_keyring(path, passphrase=_prompt_passphrase(confirm=True))
    else:
        generated = secret.keyfile is not None and not secret.keyfile.exists()
        ring = open_keyring(path, keyfile=keyfile)
        if generated:
            typer.echo(f"generated key file {secret.keyfile} (keep it secret, back it up)")
    typer.echo(f"created keyring {path} with primary key {ring.primary_id}")


@keys_app.command("rotate")
def keys_rotate(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Encrypted files to re-wrap under the new key (payloads untouched)."),
    ] = None,
    retire: Annotated[
        bool,
        typer.Option("--retire", help="Retire old keys no longer used by the given files."),
    ] = False,
    keyring: KeyringOpt = None,
    keyfile: KeyfileOpt = None,
) -> None:
    """Add a new primary key; re-wrap FILES; optionally retire unused old keys.

    --retire only knows about the files given here: objects encrypted under a retired key
    elsewhere can no longer be decrypted.
    """
    from tutela.governance.envelope import Envelope, read_header

    ring = _open_keyring(keyring, keyfile)
    info = ring.rotate()
    typer.echo(f"new primary key {info.key_id}")
    envelope = Envelope(ring)
    targets = files or []
    for path in targets:
        changed = envelope.rewrap_file(path)
        typer.echo(f"{'re-wrapped' if changed else 'already current'}: {path}")
    if retire:
        in_use = {read_header(p.read_bytes()).kek_id for p in targets}
        for key_id in ring.retire_unused(in_use):
            typer.echo(f"retired key {key_id}")


@keys_app.command("list")
def keys_list(
    keyring: KeyringOpt = None, keyfile: KeyfileOpt = None, as_json: JsonOpt = False
) -> None:
    """List the keyring's keys (ids, states, dates; never key material)."""
    ring = _open_keyring(keyring, keyfile)
    rows = [
        {"key_id": k.key_id, "state": k.state.value, "created": k.created, "retired": k.retired}
        for k in ring.list_keys()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        retired = f"  retired {row['retired']}" if row["retired"] else ""
        typer.echo(f"{row['key_id']}  {row['state']:<8} created {row['created']}{retired}")


# encrypt / decrypt --------------------------------------------------------------------------

NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="Object name bound into the ciphertext (default: file name)."),
]


def encrypt(
    src: Annotated[Path, typer.Argument(help="Plaintext file.")],
    dst: Annotated[Path, typer.Argument(help="Encrypted output (written atomically).")],
    name: NameOpt = None,
    keyring: KeyringOpt = None,
    keyfile: KeyfileOpt = None,
) -> None:
    """Encrypt SRC into DST (AES-256-GCM envelope; the name of DST is authenticated)."""
    from tutela.governance.envelope import Envelope

    if not src.is_file():
        raise FileNotFoundError(f"no such file: {src}")
    Envelope(_open_keyring(keyring, keyfile)).encrypt_file(src, dst, name=name)
    typer.echo(f"encrypted {src} -> {dst}")


def decrypt(
    src: Annotated[Path, typer.Argument(help="Encrypted file.")],
    dst: Annotated[Path, typer.Argument(help="Plaintext output (written only if authentic).")],
    name: NameOpt = None,
    keyring: KeyringOpt = None,
    keyfile: KeyfileOpt = None,
) -> None:
    """Decrypt SRC into DST; fails if SRC was modified, renamed or uses another key."""
    from tutela.errors import IntegrityError
    from tutela.governance.envelope import Envelope

    if not src.is_file():
        raise FileNotFoundError(f"no such file: {src}")
    envelope = Envelope(_open_keyring(keyring, keyfile))
    try:
        envelope.decrypt_file(src, dst, name=name)
    except IntegrityError:
        raise IntegrityError(
            f"cannot decrypt {src}: integrity check failed "
            "(wrong or retired key, renamed or modified file)"
        ) from None
    typer.echo(f"decrypted {src} -> {dst}")


# audit --------------------------------------------------------------------------------------

LogArg = Annotated[Path, typer.Argument(help="Audit log (SQLite, or .jsonl).")]
CheckpointOpt = Annotated[
    list[Path] | None,
    typer.Option("--checkpoint", help="Signed checkpoint file the log must be consistent with."),
]
TrustedOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--trusted-key",
        help="Audit-signing key to trust, as printed where it was created "
        "(<name>+<key ID>+<key>); repeatable; added to the trust store's keys.",
        show_default=False,
    ),
]
TrustStoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--trust-store",
        help="Trust store of pinned audit-signing keys (default: $TUTELA_TRUST_STORE, else "
        "trusted-audit-keys in $TUTELA_HOME or .tutela).",
        show_default=False,
    ),
]
KeyNameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="Note key name (default: tutela.audit/<hash of the key>).",
        show_default=False,
    ),
]

trust_app = typer.Typer(
    help="Pin the audit-signing keys you trust (compare each fingerprint out of band).",
    no_args_is_help=True,
)
audit_app.add_typer(trust_app, name="trust")


def _load_checkpoints(paths: list[Path] | None) -> list[Checkpoint]:
    from tutela.governance.audit import Checkpoint

    return [Checkpoint.load(p) for p in paths or []]


def _audit_keys(trusted_key: list[str] | None, trust_store: Path | None) -> list[VerifierKey]:
    """The keys an auditor trusts: the trust store's and those given with --trusted-key."""
    from tutela.governance.trust import TrustStore, parse_verifier_keys

    keys = list(TrustStore.load(trust_store).keys)
    keys += [k for k in parse_verifier_keys(trusted_key or []) if k not in keys]
    return keys


@audit_app.command("verify")
def audit_verify(
    log: LogArg,
    checkpoint: CheckpointOpt = None,
    trusted_key: TrustedOpt = None,
    trust_store: TrustStoreOpt = None,
    witnesses: Annotated[
        Path | None,
        typer.Option(
            "--witnesses",
            help="Cosigned checkpoints (a file, or a directory of *.checkpoint files): require "
            "a quorum of cosignatures by pinned witness keys on the checkpoint covering the "
            "whole log.",
            show_default=False,
        ),
    ] = None,
    witness_quorum: Annotated[
        int | None,
        typer.Option(
            "--witness-quorum",
            min=1,
            help="Cosignatures by distinct pinned witness keys required (default 1).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify every record and require a checkpoint of the whole log signed by a pinned key.

    Exits 1 naming the first bad record; a log no trusted checkpoint covers fails too, and
    so, with --witnesses, does one that too few pinned witnesses cosigned.
    """
    from tutela.errors import AuditVerificationError
    from tutela.governance.witness import load_cosigned, verify_witnessed

    if witness_quorum is not None and witnesses is None:
        raise typer.BadParameter("--witness-quorum needs --witnesses", param_hint="--witnesses")
    keys = _audit_keys(trusted_key, trust_store)
    cosigned = load_cosigned(witnesses) if witnesses is not None else []
    report, witnessed = verify_witnessed(
        log, keys, cosigned, witness_quorum or 1, _load_checkpoints(checkpoint)
    )
    if witnesses is None:
        witnessed = None
    failed = report.problem if not report.ok else None
    if failed is None and witnessed is not None and not witnessed.ok:
        failed = witnessed.problem
    if as_json:
        doc = report.to_json()
        if witnesses is not None:
            doc["witnesses"] = witnessed.to_json() if witnessed is not None else None
        doc["ok"] = failed is None
        typer.echo(json.dumps(doc, indent=2))
        if failed is not None:
            raise typer.Exit(1)
        return
    if failed is not None:
        raise AuditVerificationError(f"audit log {log} does not verify: {failed}")
    typer.echo(f"{log}: {report.describe()}")
    if witnessed is not None:
        typer.echo(f"witnesses: {witnessed.describe()}")


@audit_app.command("show")
def audit_show(
    log: LogArg,
    start: Annotated[int, typer.Option("--start", min=0, help="First record index.")] = 0,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N records.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print records (unverified; run `tutela audit verify` to check them)."""
    from tutela.governance.audit import AuditLog

    stop = None if limit is None else start + limit
    with AuditLog.open_existing(log) as audit:
        records = list(audit.records(start, stop))
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in records], indent=2, ensure_ascii=False))
        return
    for r in records:
        details = json.dumps(dict(r.details), sort_keys=True, ensure_ascii=False)
        typer.echo(
            f"{r.index:>6}  {r.timestamp}  {r.actor}  {r.action}  {r.resource or '-'}  "
            f"{r.outcome}  {details}"
        )


@audit_app.command("prove")
def audit_prove(
    log: LogArg,
    index: Annotated[
        int | None, typer.Option("--index", min=0, help="Prove inclusion of this record.")
    ] = None,
    from_size: Annotated[
        int | None,
        typer.Option("--from-size", min=1, help="Prove consistency from this earlier size."),
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", min=1, help="Tree size to prove against (default: now).")
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="Prove against this signed checkpoint (its size) and check the proof; it must "
            "be signed by a trusted key.",
        ),
    ] = None,
    trusted_key: TrustedOpt = None,
    trust_store: TrustStoreOpt = None,
) -> None:
    """Print an inclusion (--index) or consistency (--from-size) proof as JSON."""
    from tutela.errors import AuditVerificationError
    from tutela.governance.audit import AuditLog, Checkpoint

    if (index is None) == (from_size is None):
        raise typer.BadParameter("give exactly one of --index or --from-size")
    cp = Checkpoint.load(checkpoint) if checkpoint is not None else None
    signers: tuple[VerifierKey, ...] = ()
    if cp is not None:
        signers = cp.signers(_audit_keys(trusted_key, trust_store))
        if not signers:
            raise AuditVerificationError(
                f"checkpoint {checkpoint} is signed by no trusted key "
                f"(it names {', '.join(cp.signer_names)}; pin one with `tutela audit trust add`)"
            )
        if size is not None and size != cp.size:
            raise ValueError(f"--size {size} differs from the checkpoint's size {cp.size}")
        size = cp.size
    with AuditLog.open_existing(log) as audit:
        doc: dict[str, Any]
        if index is not None:
            inc = audit.prove_inclusion(index, size)
            ok = inc.verify(cp.root if cp else None)
            doc = inc.to_json()
        else:
            assert from_size is not None
            con = audit.prove_consistency(from_size, size)
            ok = con.verify(new_root=cp.root if cp else None)
            doc = con.to_json()
    doc["verified"] = ok
    if cp is not None:
        doc["checkpoint"] = {
            "size": cp.size,
            "root": cp.root.hex(),
            "signed_by": [k.encode() for k in signers],
        }
    typer.echo(json.dumps(doc, indent=2))
    if not ok:
        raise AuditVerificationError("the proof does not verify against the checkpoint")


@audit_app.command("keygen")
def audit_keygen(
    key: Annotated[Path, typer.Argument(help="Where to write the Ed25519 private key (PEM).")],
    name: KeyNameOpt = None,
) -> None:
    """Create a checkpoint-signing key; prints its verifier key for auditors to pin."""
    from tutela.governance.audit import VerifierKey, generate_signing_key

    signing = generate_signing_key(key)  # mode 0600; missing folders are created 0700
    typer.echo(f"verifier key {VerifierKey.of(signing, name).encode()}")


@audit_app.command("fingerprint")
def audit_fingerprint(
    key: Annotated[Path, typer.Argument(help="Ed25519 signing key (PEM).")],
    name: KeyNameOpt = None,
) -> None:
    """Print the verifier key (fingerprint) of a signing key, to pin with `audit trust add`."""
    from tutela.governance.audit import VerifierKey, load_signing_key

    typer.echo(VerifierKey.of(load_signing_key(key), name).encode())


@audit_app.command("checkpoint")
def audit_checkpoint(
    log: LogArg,
    key: Annotated[Path, typer.Option("--key", help="Ed25519 signing key (from `audit keygen`).")],
    name: KeyNameOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the checkpoint to this file.")
    ] = None,
) -> None:
    """Sign the log's current tree head (a C2SP checkpoint), store it in the log, print it."""
    from tutela.governance.audit import AuditLog, load_signing_key

    signing = load_signing_key(key)
    with AuditLog.open_existing(log) as audit:
        cp = audit.checkpoint(signing, name=name)
    if out is not None:
        cp.save(out)
    typer.echo(cp.encode(), nl=False)


@audit_app.command("append")
def audit_append(
    log: LogArg,
    actor: Annotated[str, typer.Option("--actor", help="Who acted.")],
    action: Annotated[str, typer.Option("--action", help="What was done.")],
    resource: Annotated[str | None, typer.Option("--resource", help="On what.")] = None,
    outcome: Annotated[str, typer.Option("--outcome", help="success, failure, denied...")] = (
        "success"
    ),
    details: Annotated[str, typer.Option("--details", help="JSON object.")] = "{}",
) -> None:
    """Append one record (creating the log if needed); prints its index."""
    from tutela.governance.audit import AuditLog

    try:
        parsed = json.loads(details)
    except ValueError as exc:
        raise ValueError(f"--details is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValueError("--details must be a JSON object")
    with AuditLog.open(log) as audit:
        typer.echo(str(audit.append(actor, action, resource, outcome, parsed)))


@trust_app.command("add")
def trust_add(
    key: Annotated[str, typer.Argument(help="Verifier key as printed: <name>+<key ID>+<key>.")],
    trust_store: TrustStoreOpt = None,
) -> None:
    """Trust checkpoints signed by KEY, or cosigned by it if KEY is a site's witness key
    (compare it with the one printed where it was made)."""
    from tutela.governance.trust import TrustStore, parse_verifier_keys

    (verifier,) = parse_verifier_keys([key])
    store = TrustStore.load(trust_store)
    if verifier in store.keys:
        typer.echo(f"already trusted in {store.path}: {verifier.encode()}")
        return
    store.with_key(verifier).save()
    typer.echo(f"trusted {verifier.name} in {store.path}")


@trust_app.command("list")
def trust_list(trust_store: TrustStoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the pinned audit-signing keys."""
    from tutela.governance.trust import TrustStore

    store = TrustStore.load(trust_store)
    if as_json:
        typer.echo(json.dumps([k.encode() for k in store.keys], indent=2))
        return
    if not store.keys:
        typer.echo(f"no keys pinned in {store.path}", err=True)
    for k in store.keys:
        typer.echo(k.encode())


@trust_app.command("remove")
def trust_remove(
    key: Annotated[str, typer.Argument(help="Verifier key or key name to stop trusting.")],
    trust_store: TrustStoreOpt = None,
) -> None:
    """Stop trusting a key (by verifier key or name)."""
    from tutela.governance.trust import TrustStore

    store, removed = TrustStore.load(trust_store).without(key)
    if not removed:
        raise ValueError(f"no pinned key matches {key!r} in {store.path}")
    store.save()
    for k in removed:
        typer.echo(f"removed {k.encode()}")


# comply -------------------------------------------------------------------------------------


def comply(
    run_dir: Annotated[
        Path | None,
        typer.Argument(help="Run directory (with results.json); omit with --study."),
    ] = None,
    framework: Annotated[
        str, typer.Option("--framework", "-f", help="gdpr, hipaa or ccpa.")
    ] = "gdpr",
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the report to this file.")
    ] = None,
    trusted_keys: Annotated[
        Path | None,
        typer.Option(
            "--site-keys",
            help="JSON object mapping each site to the hex Ed25519 key you pinned for it; "
            "site reports are then verified against these keys only (default: the keys the "
            "sites registered at join, as the run records them).",
            show_default=False,
        ),
    ] = None,
    trusted_key: TrustedOpt = None,
    trust_store: TrustStoreOpt = None,
    study: Annotated[
        Path | None,
        typer.Option(
            "--study",
            help="Check a study file before it runs, against --policy (a CI gate): exit 0 "
            "if the site would accept it, 1 with every reason if not.",
            show_default=False,
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Site policy TOML for --study.", show_default=False),
    ] = None,
) -> None:
    """Check what a run actually did against GDPR/HIPAA/CCPA controls; exit 1 if any fails.

    With ``--study S --policy P`` instead, check a study before it runs: would a site with
    that policy accept it (purpose, columns, identifiers, DP floor, secure aggregation,
    model allow-list, limits)? Exit 0 if so, 1 with every reason if not.
    """
    if study is not None or policy is not None:
        if study is None or policy is None or run_dir is not None:
            raise typer.BadParameter("check a study with both --study and --policy, no RUN_DIR")
        _precheck(study, policy, as_json, out)
        return
    if run_dir is None:
        raise typer.BadParameter("give a RUN_DIR, or --study and --policy")
    from tutela.governance.comply import Framework, check_run, load_trusted_keys

    try:
        fw = Framework(framework.lower())
    except ValueError:
        raise typer.BadParameter(
            f"unknown framework {framework!r} (choose gdpr, hipaa or ccpa)",
            param_hint="--framework",
        ) from None
    pinned = load_trusted_keys(trusted_keys) if trusted_keys is not None else None
    audit_keys = _audit_keys(trusted_key, trust_store)
    report = check_run(run_dir, fw, trusted_keys=pinned, audit_keys=audit_keys)
    text = (
        json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
        if as_json
        else report.to_markdown()
    )
    if out is not None:
        out.write_text(text, encoding="utf-8")
    typer.echo(text, nl=False)
    if not report.passed:
        typer.echo(f"failed checks: {', '.join(report.failed)}", err=True)
        raise typer.Exit(1)


def _precheck(study: Path, policy: Path, as_json: bool, out: Path | None) -> None:
    """``comply --study S --policy P``: the site's verdict on a study, before it runs."""
    from tutela.fl.config import load_study
    from tutela.fl.recipes import precheck
    from tutela.governance.minimisation import SitePolicy

    config = load_study(study)
    decision = precheck(config, SitePolicy.from_toml(policy))
    doc = {
        "study": config.study.name,
        "study_file": str(study),
        "policy_file": str(policy),
        "allowed": decision.allowed,
        "findings": [
            {"rule": f.rule, "passed": f.passed, "message": f.message} for f in decision.findings
        ],
    }
    if as_json:
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        verdict = "accepted" if decision.allowed else "REFUSED"
        lines = [f"# Study {config.study.name!r} against {policy}: {verdict}", ""]
        lines += ["| rule | result | finding |", "|---|---|---|"]
        lines += [
            f"| {f.rule} | {'pass' if f.passed else 'FAIL'} | {f.message} |"
            for f in decision.findings
        ]
        text = "\n".join(lines) + "\n"
    if out is not None:
        out.write_text(text, encoding="utf-8")
    typer.echo(text, nl=False)
    if not decision.allowed:
        typer.echo("refused: " + "; ".join(decision.reasons), err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach the governance commands to the root app."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
    app.command("encrypt")(encrypt)
    app.command("decrypt")(decrypt)
    app.command("comply")(comply)
