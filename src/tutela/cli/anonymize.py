"""``tutela anonymize`` (tables) and ``tutela pii scan|redact|reveal`` (text).

Outputs are written to a temporary file beside the target and renamed into place only
after everything succeeded, so a failed run never leaves a half-written file. Every run
given ``--audit LOG`` appends one record to the governance audit log.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import typer

if TYPE_CHECKING:
    from tutela.anonymize import Operator, PiiDetector

pii_app = typer.Typer(help="Find and remove personal identifiers in text.", no_args_is_help=True)

KEY_ENV = "TUTELA_PSEUDONYM_KEY"
MAX_TABLE_BYTES = 2 << 30


class ProfileOpt(StrEnum):
    HIPAA_SAFE_HARBOR = "hipaa-safe-harbor"
    NONE = "none"


class LKindOpt(StrEnum):
    DISTINCT = "distinct"
    ENTROPY = "entropy"
    RECURSIVE = "recursive"


class DirectOpt(StrEnum):
    DROP = "drop"
    PSEUDONYMIZE = "pseudonymize"


class OperatorOpt(StrEnum):
    REDACT = "redact"
    MASK = "mask"
    PSEUDONYMIZE = "pseudonymize"
    ENCRYPT = "encrypt"
    GENERALIZE = "generalize"
    DATE_SHIFT = "date-shift"
    SUPPRESS = "suppress"


PSEUDONYM_KEY_NAME = "tutela-pseudonym-key"


def _keyring_key() -> bytes | None:
    """The pseudonymisation key kept under the keyring, created on first use.

    It is stored beside the keyring as ``<keyring>.pseudonym``, AES-256-GCM enveloped under
    the keyring and bound to its name, so every site that holds the same keyring derives the
    same (linkable) pseudonyms and nobody without the keyring can. Used only when Tutela's
    keyring (see :mod:`tutela.governance.home`) exists and a secret for it is set
    (``TUTELA_KEYFILE``, ``TUTELA_PASSPHRASE``, or its key file beside it); never prompts.
    """
    from tutela.governance._files import atomic_write
    from tutela.governance.envelope import Envelope
    from tutela.governance.home import keyring_path, keyring_secret, open_keyring

    path = keyring_path()
    if not path.exists() or keyring_secret(path) is None:
        return None
    envelope = Envelope(open_keyring(path, create=False))
    stored = path.with_name(path.name + ".pseudonym")
    if stored.exists():
        return envelope.decrypt(stored.read_bytes(), name=PSEUDONYM_KEY_NAME)
    key = os.urandom(32)
    atomic_write(stored, envelope.encrypt(key, name=PSEUDONYM_KEY_NAME))
    return key


def _load_key(key_file: Path | None, required: bool) -> bytes | None:
    """Key from ``--key-file`` (raw bytes or hex text), ``$TUTELA_PSEUDONYM_KEY`` (hex), or
    the keyring (see :func:`_keyring_key`), in that order."""
    from tutela.errors import ConfigError

    raw: bytes | None = None
    if key_file is not None:
        try:
            data = key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {key_file}: {exc.strerror}") from None
        text = data.strip()
        try:
            raw = bytes.fromhex(text.decode("ascii")) if len(text) >= 64 else data
        except (UnicodeDecodeError, ValueError):
            raw = data
    elif os.environ.get(KEY_ENV):
        try:
            raw = bytes.fromhex(os.environ[KEY_ENV].strip())
        except ValueError:
            raise ConfigError(f"${KEY_ENV} must be hex") from None
    if raw is None:
        raw = _keyring_key()
    if raw is None:
        if required:
            raise ConfigError(
                f"this operator needs a key: pass --key-file, set ${KEY_ENV}, or unlock the "
                "keyring with TUTELA_PASSPHRASE or TUTELA_KEYFILE"
            )
        return None
    if len(raw) < 32:
        raise ConfigError(f"the pseudonym key must have at least 32 bytes, got {len(raw)}")
    return raw


@contextlib.contextmanager
def _atomic(target: Path) -> Iterator[TextIO]:
    """Write text to ``target`` through the one private atomic writer (renamed on success).

    The output folder must exist: a mistyped ``--out`` fails instead of creating folders.
    """
    from tutela.governance._files import atomic_text_writer

    folder = target.parent
    if not folder.is_dir():
        from tutela.errors import DataError

        raise DataError(f"output folder {folder} does not exist")
    with atomic_text_writer(target, make_parents=False) as handle:
        yield handle


def _audit(log: Path | None, action: str, resource: str, details: dict[str, Any]) -> None:
    if log is None:
        return
    from tutela.governance.audit import AuditLog

    try:
        actor = getpass.getuser()
    except (KeyError, OSError):
        actor = "unknown"
    with AuditLog.open(log) as audit_log:
        audit_log.append(actor, action, resource, "success", details)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_csv(path: Path) -> Any:
    import pandas as pd

    from tutela.errors import DataError

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise DataError(
            f"{path}: {size / 2**30:.1f} GiB is more than the {MAX_TABLE_BYTES >> 30} GiB an "
            "in-memory anonymisation accepts; split the table by site or period"
        )
    try:
        return pd.read_csv(path, dtype_backend="numpy_nullable", low_memory=False)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "empty file"
        raise DataError(f"{path}: not a readable CSV ({first})") from None
    except MemoryError:
        raise DataError(f"{path}: not enough memory to load the table") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def anonymize_command(
    input_csv: Path = typer.Argument(..., help="Input table (CSV with a header row)."),
    out: Path = typer.Option(..., "--out", help="Anonymised CSV to write."),
    report: Path = typer.Option(..., "--report", help="JSON report to write."),
    profile: ProfileOpt = typer.Option(ProfileOpt.HIPAA_SAFE_HARBOR, "--profile"),
    k: int = typer.Option(5, "--k", min=1, help="Minimum equivalence-class size."),
    l_div: int | None = typer.Option(None, "--l", min=1, help="l-diversity of --sensitive."),
    l_kind: LKindOpt = typer.Option(LKindOpt.DISTINCT, "--l-kind"),
    c: float = typer.Option(2.0, "--c", help="c of recursive (c,l)-diversity."),
    t: float | None = typer.Option(
        None, "--t", min=0.0, max=1.0, help="t-closeness of --sensitive."
    ),
    quasi_identifiers: str | None = typer.Option(
        None, "--quasi-identifiers", help="Comma-separated QI columns (default: detected)."
    ),
    sensitive: str | None = typer.Option(None, "--sensitive", help="Sensitive column."),
    max_suppression: float = typer.Option(0.05, "--max-suppression", min=0.0, max=0.99),
    direct_identifiers: DirectOpt = typer.Option(DirectOpt.DROP, "--direct-identifiers"),
    key_file: Path | None = typer.Option(None, "--key-file", help="Pseudonym key file."),
    no_ner: bool = typer.Option(False, "--no-ner", help="Rules only for free-text columns."),
    audit: Path | None = typer.Option(None, "--audit", help="Append a record to this audit log."),
) -> None:
    """Anonymise a CSV table: Safe Harbor rules, then k-anonymity (and l / t), verified."""
    from tutela.anonymize import LDiversity, PiiDetector, Profile, anonymize_table

    df = _read_csv(input_csv)
    key = _load_key(key_file, required=direct_identifiers is DirectOpt.PSEUDONYMIZE)
    qis = (
        [q.strip() for q in quasi_identifiers.split(",") if q.strip()]
        if quasi_identifiers
        else None
    )
    result = anonymize_table(
        df,
        profile=Profile(profile.value),
        k=k,
        l=l_div,
        l_kind=LDiversity(l_kind.value),
        c=c,
        t=t,
        quasi_identifiers=qis,
        sensitive=sensitive,
        max_suppression=max_suppression,
        key=key,
        direct_identifiers="pseudonymize"
        if direct_identifiers is DirectOpt.PSEUDONYMIZE
        else "drop",
        detector=PiiDetector(ner="off") if no_ner else None,  # NER loads only if text columns
    )
    payload = result.report.to_json()
    with _atomic(out) as handle, _atomic(report) as rep:
        result.table.to_csv(handle, index=False)
        json.dump(payload, rep, indent=2, sort_keys=True)
        rep.write("\n")
    _audit(
        audit,
        "anonymize:table",
        str(input_csv),
        {
            "profile": payload["profile"],
            "k_requested": payload["k_requested"],
            "k_achieved": payload["k_achieved"],
            "l_requested": payload["l_requested"],
            "l_achieved": payload["l_achieved"],
            "t_requested": payload["t_requested"],
            "t_achieved": payload["t_achieved"],
            "rows_in": payload["rows_in"],
            "suppressed_rows": payload["suppressed_rows"],
            "equivalence_classes": payload["equivalence_classes"],
            "ncp": payload["ncp"],
            "quasi_identifiers": payload["quasi_identifiers"],
            "output": str(out),
            "output_sha256": _sha256(out),
        },
    )
    r = result.report
    typer.echo(
        f"wrote {out} ({r.rows_out} rows): k={r.k_achieved}"
        + (f" l={r.l_achieved}" if r.l_achieved is not None else "")
        + f", {r.equivalence_classes} classes, {r.suppressed_rows} suppressed, NCP {r.ncp:.3f}"
    )


def _detector(no_ner: bool, threshold: float) -> PiiDetector:
    from tutela.anonymize import PiiDetector

    return PiiDetector(ner="off" if no_ner else "auto", threshold=threshold)


def _files(path: Path) -> list[Path]:
    from tutela.errors import DataError

    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    raise DataError(f"{path}: no such file or directory")


@pii_app.command("scan")
def scan(
    path: Path = typer.Argument(..., help="A text file or a directory of text files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one line per file)."),
    no_ner: bool = typer.Option(False, "--no-ner", help="Rules only (no spaCy NER)."),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0),
) -> None:
    """Report identifier spans (character offsets) in a file or every file of a directory."""
    from tutela.errors import DataError

    files = _files(path)
    detector = _detector(no_ner, threshold)
    failed: list[str] = []
    if not as_json:
        typer.echo(detector.status.note, err=True)
    for f in files:
        try:
            spans = list(detector.scan_file(f))
        except DataError as exc:
            if not path.is_dir():
                raise
            failed.append(str(exc))
            if as_json:
                typer.echo(json.dumps({"path": str(f), "error": str(exc)}))
            continue
        if as_json:
            doc: dict[str, Any] = {"spans": [s.to_json() for s in spans]}
            if path.is_dir():
                doc = {"path": str(f), **doc}
            typer.echo(json.dumps(doc))
        else:
            for s in spans:
                typer.echo(f"{f}:{s.start}-{s.end}\t{s.label.value}\t{s.score:.2f}")
    if failed:
        raise DataError(f"{len(failed)} file(s) could not be scanned; first: {failed[0]}")


def _operator(op: OperatorOpt, key_file: Path | None, subject: str | None) -> Operator:
    from tutela.anonymize import (
        DateShift,
        Encrypt,
        Generalize,
        Mask,
        Pseudonymize,
        Redact,
        Suppress,
    )

    needs_key = op in (OperatorOpt.PSEUDONYMIZE, OperatorOpt.ENCRYPT, OperatorOpt.DATE_SHIFT)
    key = _load_key(key_file, required=needs_key)
    if op is OperatorOpt.REDACT:
        return Redact()
    if op is OperatorOpt.MASK:
        return Mask()
    if op is OperatorOpt.PSEUDONYMIZE:
        assert key is not None
        return Pseudonymize(key)
    if op is OperatorOpt.ENCRYPT:
        assert key is not None
        return Encrypt(key)
    if op is OperatorOpt.GENERALIZE:
        return Generalize()
    if op is OperatorOpt.DATE_SHIFT:
        assert key is not None
        if not subject:
            raise typer.BadParameter("date-shift needs --subject (the patient id)")
        return DateShift(key, subject)
    return Suppress()


@pii_app.command("redact")
def redact(
    path: Path = typer.Argument(..., help="Text file to de-identify."),
    out: Path | None = typer.Option(None, "--out", help="Output file (default: stdout)."),
    operator: OperatorOpt = typer.Option(OperatorOpt.REDACT, "--operator"),
    key_file: Path | None = typer.Option(None, "--key-file", help="Key for keyed operators."),
    subject: str | None = typer.Option(None, "--subject", help="Patient id for date-shift."),
    no_ner: bool = typer.Option(False, "--no-ner", help="Rules only (no spaCy NER)."),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0),
    audit: Path | None = typer.Option(None, "--audit", help="Append a record to this audit log."),
) -> None:
    """Replace every detected identifier in a text file (streamed, block by block)."""
    from tutela.anonymize import apply_operator
    from tutela.anonymize.detector import read_text_blocks

    op = _operator(operator, key_file, subject)
    if not path.is_file():
        from tutela.errors import DataError

        raise DataError(f"{path}: no such file")
    detector = _detector(no_ner, threshold)
    counts: dict[str, int] = {}

    def blocks() -> Iterator[str]:
        for _, block in read_text_blocks(path):
            spans = detector.detect(block)
            for s in spans:
                counts[s.label.value] = counts.get(s.label.value, 0) + 1
            yield apply_operator(block, spans, op)

    if out is None:
        for chunk in blocks():
            typer.echo(chunk, nl=False)
    else:
        with _atomic(out) as handle:
            for chunk in blocks():
                handle.write(chunk)
    _audit(
        audit,
        "pii:redact",
        str(path),
        {"operator": operator.value, "spans": counts, "output": str(out) if out else "-"},
    )
    typer.echo(f"{sum(counts.values())} identifiers replaced ({operator.value})", err=True)


@pii_app.command("reveal")
def reveal(
    path: Path = typer.Argument(..., help="Text produced by `pii redact --operator encrypt`."),
    key_file: Path | None = typer.Option(None, "--key-file", help="The encryption key."),
    out: Path | None = typer.Option(None, "--out", help="Output file (default: stdout)."),
) -> None:
    """Decrypt every ``ENC.`` token (authenticated; any tampering fails the whole run)."""
    from tutela.anonymize import reveal_text
    from tutela.errors import DataError

    key = _load_key(key_file, required=True)
    assert key is not None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise DataError(f"{path}: cannot read as UTF-8 text") from None
    clear = reveal_text(key, text)
    if out is None:
        typer.echo(clear, nl=False)
    else:
        with _atomic(out) as handle:
            handle.write(clear)


def register(app: typer.Typer) -> None:
    """Attach ``anonymize`` and ``pii`` to the root app."""
    app.command("anonymize")(anonymize_command)
    app.add_typer(pii_app, name="pii")
