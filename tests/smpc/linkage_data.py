"""Two hospitals' patient lists with a known overlap, written in different conventions.

Hospital A writes names as ``given`` / ``family`` with accents and ISO dates; hospital B
writes the same people with accents dropped, upper case, extra spaces, day-first or
month-name dates, and for some a spelling variant that keeps the Soundex code (``Smyth``
for ``Smith``), or the family name first in one field. The true overlap is known by a
person id that neither hospital's linkage sees.
"""

from __future__ import annotations

import random

GIVEN = [
    "John", "Zoë", "María", "François", "Aisha", "Liam", "Noah", "Olivia", "Emma", "Björn",
    "Chloé", "Mateo", "Sofía", "Ines", "Yusuf", "Hana", "Pierre", "Greta", "Tomás", "Ana",
]  # fmt: skip
FAMILY = [
    "Smith", "García", "Müller", "O'Brien", "Nguyen", "Dubois", "Kowalski", "Rossi",
    "Johansson", "Peterson", "Thompson", "Fernández", "Schmidt", "Novak", "Moreau", "Silva",
]  # fmt: skip
VARIANTS = {"Smith": "Smyth", "John": "Jon", "Peterson": "Petersen", "Thompson": "Thompsen"}
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]  # fmt: skip


def _ascii(text: str) -> str:
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def two_hospitals(
    n_a: int, n_b: int, n_common: int, *, seed: int = 0
) -> tuple[list[dict[str, str]], list[dict[str, str]], set[tuple[int, int]]]:
    """Rows of A, rows of B, and the true links as (row of A, row of B) pairs."""
    rng = random.Random(seed)
    people: dict[tuple[str, str, str], int] = {}
    seen: set[tuple[str, str]] = set()  # one person per (given name, birth date): no twins
    while len(people) < n_a + n_b - n_common:
        person = (
            rng.choice(GIVEN),
            rng.choice(FAMILY) + ("" if rng.random() < 0.5 else f"-{rng.choice(FAMILY)}"),
            f"{rng.randint(1930, 2010):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        )
        if (person[0], person[2]) not in seen:
            seen.add((person[0], person[2]))
            people[person] = len(people)
    persons = list(people)
    common = persons[:n_common]
    only_a = persons[n_common:n_a]
    only_b = persons[n_a:]
    a_people = common + only_a
    b_people = common + only_b
    rng.shuffle(a_people)
    rng.shuffle(b_people)
    a_rows = [{"given_name": g, "family_name": f, "date_of_birth": d} for g, f, d in a_people]
    b_rows = [_as_b(p, rng) for p in b_people]
    index_b = {p: j for j, p in enumerate(b_people)}
    truth = {(i, index_b[p]) for i, p in enumerate(a_people) if p in index_b}
    return a_rows, b_rows, truth


def _as_b(person: tuple[str, str, str], rng: random.Random) -> dict[str, str]:
    given, family, iso = person
    y, m, d = (int(x) for x in iso.split("-"))
    style = rng.randrange(4)
    if style == 0:
        date = f"{d:02d}/{m:02d}/{y}"
    elif style == 1:
        date = f"{d} {MONTHS[m - 1]} {y}"
    elif style == 2:
        date = f"{d}.{m}.{y}"
    else:
        date = f"{y}{m:02d}{d:02d}"
    if rng.random() < 0.3:  # a spelling variant with the same Soundex code
        given = VARIANTS.get(given, given)
        family = "-".join(VARIANTS.get(part, part) for part in family.split("-"))
    name_style = rng.randrange(3)
    if name_style == 0:
        return {
            "given_name": f"  {_ascii(given).upper()} ",
            "family_name": family,
            "date_of_birth": date,
        }
    if name_style == 1:  # one field, family first, with a comma
        return {
            "given_name": f"{_ascii(family)},  {given}",
            "family_name": "",
            "date_of_birth": date,
        }
    return {
        "given_name": given.lower(),
        "family_name": _ascii(family).lower(),
        "date_of_birth": date,
    }
