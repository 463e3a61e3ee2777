"""Operators that replace a detected identifier: redact, mask, keyed pseudonym, reversible
encryption (AES-SIV), generalise, per-subject date shift, suppress.

Keys are plain ``bytes`` here; where they come from (a keyring, a key file) is the
caller's business, so this package depends on no key store.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import phonenumbers
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tutela.anonymize.spans import PiiLabel, Span
from tutela.errors import IntegrityError

MIN_KEY_BYTES = 32
"""Keys for pseudonyms, encryption and date shifts must have at least 256 bits."""

RESTRICTED_ZIP3: frozenset[str] = frozenset(
    [
        "036",
        "059",
        "063",
        "102",
        "203",
        "556",
        "692",
        "790",
        "821",
        "823",
        "830",
        "831",
        "878",
        "879",
        "884",
        "890",
        "893",
    ]
)
"""ZIP3 areas with 20,000 people or fewer (HHS list from the 2000 Census); Safe Harbor
replaces them with ``000``."""


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray):
        raise TypeError("key must be bytes")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")


def _subkey(key: bytes, purpose: bytes, length: int = 32) -> bytes:
    return HKDF(hashes.SHA256(), length, salt=None, info=b"tutela/anonymize/" + purpose).derive(
        bytes(key)
    )


_DIGITISH = frozenset(
    {
        PiiLabel.SSN,
        PiiLabel.MRN,
        PiiLabel.HEALTH_PLAN,
        PiiLabel.ACCOUNT,
        PiiLabel.LICENSE,
        PiiLabel.VEHICLE,
        PiiLabel.DEVICE,
        PiiLabel.CREDIT_CARD,
        PiiLabel.IBAN,
        PiiLabel.ZIP,
    }
)


def normalize_value(value: str, label: PiiLabel | str | None = None) -> str:
    """Canonical form used before keyed hashing, so trivial spelling differences link.

    Numbers lose separators and case, phone numbers become E.164, e-mail addresses and
    names are case-folded with whitespace collapsed.
    """
    lab = PiiLabel(label) if label else None
    if lab in _DIGITISH:
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if lab is PiiLabel.PHONE:
        try:
            number = phonenumbers.parse(value, "US")
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            return re.sub(r"\D", "", value)
    return " ".join(value.casefold().split())


def pseudonym(key: bytes, value: str, label: PiiLabel | str = "", length: int = 16) -> str:
    """Deterministic keyed pseudonym: ``LABEL-`` plus base32 of HMAC-SHA256.

    Args:
        key: secret of at least 32 bytes, shared by every site that must link records.
        value: the identifier.
        label: its kind; part of the MAC input, so an MRN and a phone number with the same
            digits get different pseudonyms.
        length: base32 characters kept (16 = 80 bits).

    Security: with a secret key the pseudonym is a PRF output: it reveals nothing about
    the value and cannot be brute-forced over the (small) identifier space without the
    key. Equal values under the same key always give equal pseudonyms (linkable by
    design); different keys give unlinkable pseudonyms. Not reversible; use
    :func:`encrypt_value` when re-identification by the key holder is required.
    """
    _check_key(key)
    if not 8 <= length <= 52:
        raise ValueError("length must be between 8 and 52 base32 characters")
    lab = PiiLabel(label).value if label else ""
    message = lab.encode() + b"\x00" + normalize_value(value, lab or None).encode()
    digest = hmac.new(_subkey(key, b"pseudonym"), message, hashlib.sha256).digest()
    tag = base64.b32encode(digest).decode().rstrip("=")[:length]
    return f"{lab or 'ID'}-{tag}"


_TOKEN = re.compile(r"ENC\.([A-Z_]+)\.([A-Za-z0-9_-]+)")


def encrypt_value(key: bytes, value: str, label: PiiLabel | str = "") -> str:
    """Reversible, deterministic pseudonym: AES-256-SIV of the value, as a text token.

    The token is ``ENC.<LABEL>.<base64url>``; the label is authenticated as associated
    data, so moving a token to another label fails to decrypt.

    Security: AES-SIV (RFC 5297) is deterministic authenticated encryption: equal values
    give equal tokens (linkable, like :func:`pseudonym`), any change to a token is detected,
    and only the key holder can reverse it. Length of the value is not hidden.
    """
    _check_key(key)
    lab = PiiLabel(label).value if label else "ID"
    aead = AESSIV(_subkey(key, b"aes-siv", 64))
    ct = aead.encrypt(value.encode(), [lab.encode()])
    return f"ENC.{lab}.{base64.urlsafe_b64encode(ct).decode().rstrip('=')}"


def decrypt_value(key: bytes, token: str) -> str:
    """Invert :func:`encrypt_value`.

    Raises:
        IntegrityError: wrong key, tampered or malformed token (one opaque error).
    """
    _check_key(key)
    m = _TOKEN.fullmatch(token.strip())
    if m is None:
        raise IntegrityError()
    lab, body = m.groups()
    try:
        ct = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        pt = AESSIV(_subkey(key, b"aes-siv", 64)).decrypt(ct, [lab.encode()])
        return pt.decode()
    except (InvalidTag, ValueError, UnicodeDecodeError):
        raise IntegrityError() from None


def reveal_text(key: bytes, text: str) -> str:
    """Decrypt every ``ENC.`` token in ``text`` (the inverse of an ``Encrypt`` run).

    Raises:
        IntegrityError: any token fails to authenticate.
    """
    return _TOKEN.sub(lambda m: decrypt_value(key, m.group(0)), text)


def date_shift_days(key: bytes, subject: str, max_days: int = 365) -> int:
    """Per-subject date offset in ``[-max_days, max_days]`` minus zero, derived by HMAC.

    Every date of one subject (patient) moves by the same number of days, so intervals
    between that subject's events are preserved, while offsets differ between subjects.

    Security: the offset is a keyed PRF of the subject identifier; without the key it is
    uniform over the ``2 * max_days`` choices. Date shifting is pseudonymisation, not
    Safe Harbor de-identification (shifted dates are still dates).
    """
    _check_key(key)
    if max_days < 1:
        raise ValueError("max_days must be at least 1")
    digest = hmac.new(_subkey(key, b"date-shift"), subject.encode(), hashlib.sha256).digest()
    r = int.from_bytes(digest[:8], "big") % (2 * max_days)
    return r - max_days if r < max_days else r - max_days + 1


# --------------------------------------------------------------------------- date parsing

_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


def _month(token: str) -> int | None:
    t = token.rstrip(".").lower()
    if len(t) < 3:
        return None
    for i, name in enumerate(_MONTHS):
        if name.startswith(t) or (t == "sept" and i == 8):
            return i + 1
    return None


def _year(y: str) -> int:
    v = int(y)
    if len(y) == 2:
        return 2000 + v if v <= 30 else 1900 + v
    return v


@dataclass(frozen=True)
class ParsedDate:
    """A date found in text and how to write a new date in the same style."""

    date: dt.date
    render: Callable[[dt.date], str] = field(compare=False)
    has_day: bool = True


_P_NUM = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})")
_P_ISO = re.compile(r"(\d{4})([/.-])(\d{1,2})\2(\d{1,2})")
_P_MDY = re.compile(r"([A-Za-z]{3,9}\.?)\s+(\d{1,2})(?:st|nd|rd|th)?(,?)\s+(\d{4})")
_P_DMY = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?([A-Za-z]{3,9}\.?)(,?)\s+(\d{4})")
_P_DMONY = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4}|\d{2})")
_P_MY = re.compile(r"([A-Za-z]{3,9}\.?)(,?)\s+(\d{4})")


def _month_name(template: str, month: int) -> str:
    name = _MONTHS[month - 1].capitalize()
    core = template.rstrip(".")
    if len(core) <= 4:
        return name[:3] + ("." if template.endswith(".") else "")
    return name


def parse_date(value: str) -> ParsedDate | None:
    """Parse the date formats the recogniser finds; ``None`` when not a calendar date.

    Slash and dash numeric dates are read month-first (US), dot dates day-first, unless
    only the other order is valid.
    """
    s = value.strip()
    try:
        if m := _P_ISO.fullmatch(s):
            y, sep = int(m.group(1)), m.group(2)
            d0 = dt.date(y, int(m.group(3)), int(m.group(4)))
            return ParsedDate(d0, lambda d: f"{d.year:04d}{sep}{d.month:02d}{sep}{d.day:02d}")
        if m := _P_NUM.fullmatch(s):
            a, sep, b, ys = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            day_first = sep == "." or a > 12
            month_, day_ = (b, a) if day_first else (a, b)
            d0 = dt.date(_year(ys), month_, day_)
            width = len(m.group(1))

            def render_num(d: dt.date) -> str:
                yy = f"{d.year % 100:02d}" if len(ys) == 2 else f"{d.year:04d}"
                first, second = (d.day, d.month) if day_first else (d.month, d.day)
                return f"{first:0{width}d}{sep}{second:0{width}d}{sep}{yy}"

            return ParsedDate(d0, render_num)
        if (m := _P_MDY.fullmatch(s)) and (mon := _month(m.group(1))):
            tok, comma = m.group(1), m.group(3)
            d0 = dt.date(int(m.group(4)), mon, int(m.group(2)))
            return ParsedDate(d0, lambda d: f"{_month_name(tok, d.month)} {d.day}{comma} {d.year}")
        if (m := _P_DMY.fullmatch(s)) and (mon := _month(m.group(2))):
            tok, comma = m.group(2), m.group(3)
            d0 = dt.date(int(m.group(4)), mon, int(m.group(1)))
            return ParsedDate(d0, lambda d: f"{d.day} {_month_name(tok, d.month)}{comma} {d.year}")
        if (m := _P_DMONY.fullmatch(s)) and (mon := _month(m.group(2))):
            tok, ys = m.group(2), m.group(3)
            d0 = dt.date(_year(ys), mon, int(m.group(1)))
            return ParsedDate(
                d0,
                lambda d: (
                    f"{d.day:02d}-{_month_name(tok, d.month)}-"
                    + (f"{d.year % 100:02d}" if len(ys) == 2 else f"{d.year}")
                ),
            )
        if (m := _P_MY.fullmatch(s)) and (mon := _month(m.group(1))):
            tok, comma = m.group(1), m.group(2)
            d0 = dt.date(int(m.group(3)), mon, 1)
            return ParsedDate(
                d0, lambda d: f"{_month_name(tok, d.month)}{comma} {d.year}", has_day=False
            )
    except ValueError:
        return None
    return None


def generalize_value(value: str, label: PiiLabel | str) -> str:
    """Safe Harbor style generalisation of one value.

    Dates keep only the year, ages of 90 or more become ``90+``, ZIP codes become their
    first three digits (``000`` for restricted areas); other kinds are redacted.
    """
    lab = PiiLabel(label)
    if lab is PiiLabel.DATE:
        parsed = parse_date(value)
        return str(parsed.date.year) if parsed else "[DATE]"
    if lab is PiiLabel.AGE:
        digits = re.sub(r"\D", "", value)
        if digits and int(digits) < 90:
            return value
        return "90+"
    if lab is PiiLabel.ZIP:
        digits = re.sub(r"\D", "", value)
        if len(digits) < 5:
            return "000"
        zip3 = digits[:3]
        return "000" if zip3 in RESTRICTED_ZIP3 else zip3
    return f"[{lab.value}]"


# --------------------------------------------------------------------------- operators


@dataclass(frozen=True)
class Redact:
    """Replace the identifier with a placeholder such as ``[PERSON]``."""

    template: str = "[{label}]"


@dataclass(frozen=True)
class Mask:
    """Overwrite characters with ``char``, keeping the last ``keep_last`` and separators.

    Values with at most ``2 * keep_last`` letters and digits are masked entirely.
    """

    char: str = "*"
    keep_last: int = 0


@dataclass(frozen=True)
class Pseudonymize:
    """Keyed deterministic pseudonym (:func:`pseudonym`)."""

    key: bytes = field(repr=False)
    length: int = 16


@dataclass(frozen=True)
class Encrypt:
    """Reversible deterministic token (:func:`encrypt_value`, AES-SIV)."""

    key: bytes = field(repr=False)


@dataclass(frozen=True)
class Generalize:
    """Safe Harbor generalisation (:func:`generalize_value`)."""


@dataclass(frozen=True)
class DateShift:
    """Shift dates by the subject's keyed offset (:func:`date_shift_days`); other labels are
    redacted."""

    key: bytes = field(repr=False)
    subject: str
    max_days: int = 365


@dataclass(frozen=True)
class Suppress:
    """Remove the identifier entirely."""


Operator = Redact | Mask | Pseudonymize | Encrypt | Generalize | DateShift | Suppress
"""Any of the replacement operators."""


def transform(value: str, label: PiiLabel | str, operator: Operator) -> str:
    """Apply ``operator`` to one identifier ``value`` of kind ``label``."""
    lab = PiiLabel(label)
    match operator:
        case Redact(template=template):
            return template.format(label=lab.value)
        case Mask(char=char, keep_last=keep):
            alnum = sum(c.isalnum() for c in value)
            # a value too short to keep a tail without revealing most of it is fully masked
            cut = len(value) - keep if keep and alnum > 2 * keep else len(value)
            return "".join(
                c if (i >= cut or not c.isalnum()) else char for i, c in enumerate(value)
            )
        case Pseudonymize(key=key, length=length):
            return pseudonym(key, value, lab, length)
        case Encrypt(key=key):
            return encrypt_value(key, value, lab)
        case Generalize():
            return generalize_value(value, lab)
        case DateShift(key=key, subject=subject, max_days=max_days):
            if lab is not PiiLabel.DATE:
                return f"[{lab.value}]"
            parsed = parse_date(value)
            if parsed is None:
                return "[DATE]"
            days = date_shift_days(key, subject, max_days)
            return parsed.render(parsed.date + dt.timedelta(days=days))
        case Suppress():
            return ""
    raise TypeError(f"not an operator: {operator!r}")


def apply_operator(
    text: str,
    spans: Sequence[Span],
    operator: Operator | Mapping[PiiLabel, Operator],
    default: Operator | None = None,
) -> str:
    """Rewrite ``text`` with every span replaced by its operator's output.

    Args:
        text: original text.
        spans: disjoint spans over ``text`` (as :class:`~tutela.anonymize.PiiDetector`
            returns them).
        operator: one operator for every label, or a mapping label -> operator.
        default: operator for labels missing from the mapping (default: :class:`Redact`).

    Raises:
        ValueError: the spans overlap or fall outside the text.
    """
    fallback = default or Redact()
    out: list[str] = []
    pos = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < pos or span.end > len(text):
            raise ValueError("spans must be disjoint and inside the text")
        op = operator.get(span.label, fallback) if isinstance(operator, Mapping) else operator
        out.append(text[pos : span.start])
        out.append(transform(text[span.start : span.end], span.label, op))
        pos = span.end
    out.append(text[pos:])
    return "".join(out)
