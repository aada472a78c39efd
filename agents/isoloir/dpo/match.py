"""Who a rights request is about, and whether a table row is theirs.

A person is named by any of: an e-mail address, a phone number, a name with
its commune. A row is theirs when one of its cells holds the same normalised
e-mail or phone (whatever the column is called), or when its name columns
give the same name (first + last, either order, or one "full name" cell) and
one cell names the commune (a commune column, or an address ending with it).
Comparisons ignore case, accents, blanks and punctuation, as the purge does.

Pure functions: the values never leave this module except in a match's
`fields` (which only the export writes, 0600, for the DPO).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from isoloir.policy.inputs import header_key
from isoloir.retention import tabular

FIRST_NAMES = ("prenom", "prenoms", "firstname", "first name", "given name")
LAST_NAMES = ("nom", "nom de famille", "lastname", "last name", "surname", "family name")
FULL_NAMES = ("nom complet", "nom prenom", "prenom nom", "name", "full name", "fullname")


class QueryError(ValueError):
    """The identifiers given cannot name anyone (the message says which)."""


@dataclass(frozen=True)
class Query:
    emails: tuple[str, ...] = ()  # normalised (lower-case)
    phones: tuple[str, ...] = ()  # E.164
    name: str = ""  # header_key form ("jeanpierredupont")
    commune: str = ""  # header_key form

    @classmethod
    def build(
        cls,
        emails: Sequence[str] = (),
        phones: Sequence[str] = (),
        name: str | None = None,
        commune: str | None = None,
    ) -> Query:
        """Normalise what the DPO typed; QueryError on an unusable value (never echoed)."""
        out_emails = []
        for i, value in enumerate(emails, start=1):
            email = tabular.normalise_email(value)
            if email is None:
                raise QueryError(f"e-mail #{i} is not an address")
            out_emails.append(email)
        out_phones = []
        for i, value in enumerate(phones, start=1):
            phone = tabular.normalise_phone(value)
            if phone is None:
                raise QueryError(f"phone #{i} is not a phone number")
            out_phones.append(phone)
        name_key = header_key(name or "")
        commune_key = header_key(commune or "")
        if bool(name_key) != bool(commune_key):
            raise QueryError("a name is searched with its commune: give both --name and --commune")
        if not (out_emails or out_phones or name_key):
            raise QueryError("give at least an e-mail, a phone, or a name with its commune")
        return cls(
            tuple(sorted(set(out_emails))), tuple(sorted(set(out_phones))), name_key, commune_key
        )

    def describe(self) -> str:
        """What is searched, without the values (for logs and the console)."""
        parts = []
        if self.emails:
            parts.append(f"{len(self.emails)} e-mail(s)")
        if self.phones:
            parts.append(f"{len(self.phones)} phone(s)")
        if self.name:
            parts.append("a name with its commune")
        return ", ".join(parts)


@dataclass(frozen=True)
class RowMatch:
    """One row of a table that is the person's: why it matched, and what it holds."""

    row: int  # 1-based, among the data rows
    matched_by: tuple[str, ...]  # "email", "phone", "name"
    fields: Mapping[str, str]  # column -> value (non-empty cells): for the export only
    emails: tuple[str, ...]  # every normalised e-mail in the row (suppression on erasure)
    phones: tuple[str, ...]


def _columns(header: Sequence[str], names: Sequence[str]) -> list[str]:
    wanted = {header_key(n) for n in names}
    return [h for h in header if header_key(h) in wanted]


def row_identifiers(row: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every e-mail and phone number any cell of the row holds, normalised."""
    emails, phones = set(), set()
    for value in row.values():
        if not value:
            continue
        if "@" in value:
            email = tabular.normalise_email(value)
            if email:
                emails.add(email)
        else:
            phone = tabular.normalise_phone(value)
            if phone:
                phones.add(phone)
    return tuple(sorted(emails)), tuple(sorted(phones))


def _name_matches(query: Query, header: Sequence[str], row: Mapping[str, str]) -> bool:
    firsts, lasts = _columns(header, FIRST_NAMES), _columns(header, LAST_NAMES)
    candidates = set()
    for f in firsts:
        for last in lasts:
            first_key, last_key = header_key(row.get(f, "")), header_key(row.get(last, ""))
            if first_key and last_key:
                candidates.update({first_key + last_key, last_key + first_key})
    for col in _columns(header, FULL_NAMES):
        candidates.add(header_key(row.get(col, "")))
    if query.name not in candidates:
        return False
    for value in row.values():
        key = header_key(value or "")
        if key and (key == query.commune or key.endswith(query.commune)):
            return True
    return False


def match_row(
    query: Query, header: Sequence[str], row: Mapping[str, str], index: int
) -> RowMatch | None:
    emails, phones = row_identifiers(row)
    why = []
    if set(emails) & set(query.emails):
        why.append("email")
    if set(phones) & set(query.phones):
        why.append("phone")
    if query.name and _name_matches(query, header, row):
        why.append("name")
    if not why:
        return None
    fields = {h: row[h] for h in header if h in row and (row[h] or "").strip()}
    return RowMatch(index, tuple(why), fields, emails, phones)


def match_table(
    query: Query, header: Sequence[str], rows: Sequence[Mapping[str, str]]
) -> list[RowMatch]:
    out = []
    for i, row in enumerate(rows, start=1):
        found = match_row(query, header, row, i)
        if found is not None:
            out.append(found)
    return out
