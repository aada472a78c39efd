"""Tabular datasets: read a prospect file, split consenting rows from opt-outs.

Pure functions, no I/O: the purge hands them the bytes of each CSV file. The
values never leave this module except as the minimised kept rows and the
normalised identifiers that the suppression list hashes.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from isoloir.policy.model import Tabular

DELIMITERS = ",;\t|"
TABULAR_SUFFIXES = (".csv", ".tsv", ".txt")
_SAMPLE = 64 * 1024
_PHONE_JUNK = re.compile(r"[\s.\-/()\u00a0]")
_PHONE_LIKE = re.compile(r"^[+\-]?[\d\s().\-/]*$")


class TabularError(ValueError):
    """A file is not a readable table (no header, binary content)."""


def is_tabular_name(name: str) -> bool:
    return name.lower().endswith(TABULAR_SUFFIXES)


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252 as French spreadsheets export."""
    if b"\x00" in data[:_SAMPLE]:
        raise TabularError("binary content")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def detect_delimiter(text: str) -> str:
    """The delimiter of a CSV text: the sniffer first, else the most frequent in the header."""
    sample = text[:_SAMPLE]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        pass
    header = sample.splitlines()[0] if sample else ""
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_table(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """Header (trimmed names) and rows (every column present, '' when missing)."""
    text = decode(data)
    if not text.strip():
        return [], []
    delimiter = detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        raw_header = next(reader)
    except StopIteration:
        return [], []
    header = [h.strip() for h in raw_header]
    if not any(header):
        raise TabularError("empty header")
    rows: list[dict[str, str]] = []
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue
        padded = list(record) + [""] * (len(header) - len(record))
        rows.append({name: padded[i] for i, name in enumerate(header) if name})
    return header, rows


def find_column(header: Sequence[str], wanted: str | None) -> str | None:
    """The header name matching `wanted` (case and surrounding blanks ignored)."""
    if not wanted:
        return None
    key = wanted.strip().casefold()
    for name in header:
        if name.strip().casefold() == key:
            return name
    return None


def normalise_email(value: str | None) -> str | None:
    """Lower-case, trimmed; None when it is not an address."""
    if value is None:
        return None
    email = value.strip().lower()
    if email.startswith("mailto:"):
        email = email[len("mailto:") :]
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or " " in email:
        return None
    return email


def normalise_phone(value: str | None, country_code: str = "33") -> str | None:
    """E.164 (+33612345678); French national numbers are assumed. None when not a number."""
    if value is None:
        return None
    raw = value.strip().replace("(0)", "")
    if raw.lower().startswith("tel:"):
        raw = raw[4:]
    raw = _PHONE_JUNK.sub("", raw)
    if not raw:
        return None
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if raw.startswith("+"):
        digits = raw[1:]
        if not digits.isdigit():
            return None
        if digits.startswith(country_code + "0"):
            digits = country_code + digits[len(country_code) + 1 :]
    else:
        if not raw.isdigit():
            return None
        if len(raw) == 10 and raw.startswith("0"):
            digits = country_code + raw[1:]
        elif len(raw) == 9 and raw[0] != "0":
            digits = country_code + raw  # the leading 0 a spreadsheet dropped
        elif len(raw) == 11 and raw.startswith(country_code):
            digits = raw
        else:
            return None
    if not 8 <= len(digits) <= 15 or digits.startswith("0"):
        return None
    return "+" + digits


def safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas in a value written to a CSV (phone numbers kept)."""
    text = value.strip()
    if text[:1] in ("=", "@", "\t", "\r") or (
        text[:1] in ("+", "-") and not _PHONE_LIKE.match(text)
    ):
        return "'" + text
    return text


@dataclass
class Split:
    """What one table yields before it is destroyed."""

    rows: int = 0
    kept: list[tuple[str, ...]] = field(default_factory=list)  # minimised consenting rows
    opted_out: int = 0
    consent_and_opt_out: int = 0  # opt-out wins: not kept
    already_suppressed: int = 0  # consenting rows of people who unsubscribed earlier: not kept
    emails: set[str] = field(default_factory=set)  # normalised opt-out identifiers
    phones: set[str] = field(default_factory=set)

    def merge(self, other: Split) -> None:
        self.rows += other.rows
        self.kept.extend(other.kept)
        self.opted_out += other.opted_out
        self.consent_and_opt_out += other.consent_and_opt_out
        self.already_suppressed += other.already_suppressed
        self.emails |= other.emails
        self.phones |= other.phones


def split_rows(
    header: Sequence[str],
    rows: Iterable[dict[str, str]],
    tabular: Tabular,
    keep_columns: Sequence[str],
    suppressed: Callable[[str | None, str | None], bool] | None = None,
) -> Split:
    """Consenting rows minimised to `keep_columns`; opt-out rows as normalised identifiers.

    Consent is explicit only (the policy's accepted values); a row that both
    consents and opts out is an opt-out.
    """
    consent_col = find_column(header, tabular.consent.column) if tabular.consent else None
    opt_col = find_column(header, tabular.opt_out.column) if tabular.opt_out else None
    email_col = find_column(header, tabular.email_column)
    phone_col = find_column(header, tabular.phone_column)
    kept_cols = [find_column(header, c) for c in keep_columns]
    out = Split()
    for row in rows:
        out.rows += 1
        opted = bool(
            tabular.opt_out and opt_col is not None and tabular.opt_out.matches(row.get(opt_col))
        )
        consented = bool(
            tabular.consent
            and consent_col is not None
            and tabular.consent.matches(row.get(consent_col))
        )
        email = normalise_email(row.get(email_col)) if email_col else None
        phone = normalise_phone(row.get(phone_col)) if phone_col else None
        if opted:
            out.opted_out += 1
            if consented:
                out.consent_and_opt_out += 1
            if email:
                out.emails.add(email)
            if phone:
                out.phones.add(phone)
        elif consented and suppressed is not None and suppressed(email, phone):
            out.already_suppressed += 1
        elif consented:
            out.kept.append(tuple(safe_cell(row.get(c, "")) if c else "" for c in kept_cols))
    return out


def identifiers(
    header: Sequence[str], row: dict[str, str], email_column: str | None, phone_column: str | None
) -> tuple[str | None, str | None]:
    """The normalised email and phone of a row (for the suppression filter)."""
    email_col = find_column(header, email_column)
    phone_col = find_column(header, phone_column)
    email = normalise_email(row.get(email_col)) if email_col else None
    phone = normalise_phone(row.get(phone_col)) if phone_col else None
    return email, phone
