"""Blocking keys for record linkage: the normalised values two hospitals compare in PSI.

A record yields one key per :class:`BlockingKey` kind; two records link when any key kind
matches (the PSI compares keys, never raw fields). Normalisation makes the same person
produce the same key across the two hospitals' conventions:

* names: Unicode compatibility decomposition with accents dropped (``Zoë`` = ``Zoe``), case
  folded (``ß`` = ``ss``), apostrophes dropped (``O'Brien`` = ``OBrien``), other punctuation
  and hyphens as spaces, whitespace collapsed, and the name's words sorted
  (``"Smith, John"`` = ``"john  SMITH"``);
* dates of birth: ISO ``YYYY-MM-DD`` from ISO dates (with or without a time), ``YYYYMMDD``,
  ``DD/MM/YYYY``, ``DD.MM.YYYY``, ``DD-MM-YYYY`` (or month first with ``day_first=False``;
  an unambiguous day above 12 is read as a day either way), ``12 March 1980`` and
  ``March 12, 1980``;
* identifiers (a national patient number, or a hash of it both sides computed with the same
  salt): compatibility-normalised, upper case, everything but letters and digits dropped.

``PHONETIC_DOB`` tolerates spelling variants and typos that keep a name's Soundex code
(``Jon Smyth`` = ``John Smith``). A missing or unreadable field gives no key of that kind
(``None``): that kind cannot link the record.

Privacy: keys are plaintext quasi-identifiers; they never leave the site except hashed to
the curve and blinded inside :mod:`tutela.smpc.psi`.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence

__all__ = [
    "BlockingKey",
    "blocking_keys",
    "normalise_date",
    "normalise_identifier",
    "normalise_name",
    "soundex",
]

_MONTHS = {
    name: i
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_YMD = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ t].*)?$")
_DMY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_D_MONTH_Y = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)\.?,?\s+(\d{4})$")
_MONTH_D_Y = re.compile(r"^([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})$")
_SOUNDEX = {
    c: d
    for d, letters in enumerate(("", "bfpv", "cgjkqsxz", "dt", "l", "mn", "r"))
    for c in letters
}


class BlockingKey(enum.Enum):
    """Kinds of linkage key, in the priority order used to pick one link per record."""

    IDENTIFIER = "identifier"
    NAME_DOB = "name+dob"
    PHONETIC_DOB = "phonetic+dob"


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalise_name(name: str) -> str:
    """Accents dropped, case folded, punctuation removed, words sorted, single spaces."""
    words = re.sub(r"[^\w]+|_", " ", re.sub(r"['\u2019`]", "", _fold(name))).split()
    return " ".join(sorted(words))


def normalise_date(text: str, *, day_first: bool = True) -> str:
    """A date of birth as ``YYYY-MM-DD``.

    Raises:
        ValueError: the text is not a date in a recognised format, or not a real date.
    """
    s = " ".join(_fold(text).split())
    if (m := _YMD.match(s)) or (m := _COMPACT.match(s)):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    elif m := _DMY.match(s):
        a, b, y = int(m[1]), int(m[2]), int(m[3])
        d, mo = (a, b) if day_first else (b, a)
        if mo > 12 >= d:  # an unambiguous day in the month's place
            d, mo = mo, d
    elif (m := _D_MONTH_Y.match(s)) and m[2] in _MONTHS:
        d, mo, y = int(m[1]), _MONTHS[m[2]], int(m[3])
    elif (m := _MONTH_D_Y.match(s)) and m[1] in _MONTHS:
        mo, d, y = _MONTHS[m[1]], int(m[2]), int(m[3])
    else:
        raise ValueError(f"unrecognised date {text!r}")
    return dt.date(y, mo, d).isoformat()


def normalise_identifier(text: str) -> str:
    """Letters and digits only, upper case (``"943 476-5919"`` = ``"9434765919"``)."""
    return re.sub(r"[^0-9A-Z]", "", unicodedata.normalize("NFKC", text).upper())


def soundex(word: str) -> str:
    """American Soundex of one word (``Robert`` and ``Rupert`` give ``R163``); ``""`` if none."""
    letters = [c for c in _fold(word) if "a" <= c <= "z"]
    if not letters:
        return ""
    code, last = [letters[0].upper()], _SOUNDEX.get(letters[0], 0)
    for c in letters[1:]:
        digit = _SOUNDEX.get(c, 0)
        if digit and digit != last:
            code.append(str(digit))
        if c not in "hw":  # h and w do not separate equal codes; vowels do
            last = digit
        if len(code) == 4:
            break
    return "".join(code).ljust(4, "0")


def _field(record: Mapping[str, object], column: str | None) -> str | None:
    if column is None:
        return None
    value = record.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def blocking_keys(
    records: Sequence[Mapping[str, object]],
    kinds: Sequence[BlockingKey] = (BlockingKey.NAME_DOB, BlockingKey.PHONETIC_DOB),
    *,
    name: Sequence[str] = ("given_name", "family_name"),
    dob: str = "date_of_birth",
    identifier: str | None = None,
    day_first: bool = True,
) -> list[tuple[bytes | None, ...]]:
    """One tuple of keys per record, one key per kind in ``kinds`` (``None``: no key).

    Args:
        records: the rows (mappings from column to value, e.g. ``df.to_dict("records")``).
        kinds: the key kinds, distinct, in priority order.
        name: the columns whose words make the name.
        dob: the date-of-birth column.
        identifier: the identifier column (needed for ``BlockingKey.IDENTIFIER``).
        day_first: how to read ``01/02/1980`` (1 February when True).

    Raises:
        ValueError: no kinds, a repeated kind, or ``IDENTIFIER`` without a column.
    """
    if not kinds or len(set(kinds)) != len(kinds):
        raise ValueError("give one or more distinct blocking key kinds")
    if BlockingKey.IDENTIFIER in kinds and identifier is None:
        raise ValueError("the IDENTIFIER key needs the identifier column")
    out: list[tuple[bytes | None, ...]] = []
    for record in records:
        words = " ".join(w for c in name if (w := _field(record, c)) is not None)
        full = normalise_name(words)
        raw_dob = _field(record, dob)
        try:
            birth = normalise_date(raw_dob, day_first=day_first) if raw_dob else None
        except ValueError:
            birth = None
        row: list[bytes | None] = []
        for kind in kinds:
            value: str | None = None
            if kind is BlockingKey.IDENTIFIER:
                raw = _field(record, identifier)
                value = normalise_identifier(raw) if raw else None
            elif full and birth:
                if kind is BlockingKey.NAME_DOB:
                    value = f"{full}|{birth}"
                else:
                    codes = sorted(soundex(w) for w in full.split())
                    value = f"{' '.join(codes)}|{birth}"
            row.append(f"{kind.value}\x00{value}".encode() if value else None)
        out.append(tuple(row))
    return out
