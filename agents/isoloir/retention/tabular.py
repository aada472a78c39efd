"""Tabular datasets: read a prospect file, split consenting rows from opt-outs.

Pure functions, no I/O: the purge hands them the bytes of each CSV file (or the
records of a spreadsheet sheet). The values never leave this module except as
the minimised kept rows and the normalised identifiers that the suppression
list hashes.

Files are read as French campaign teams export them: UTF-8 with or without a
BOM, UTF-16 with a BOM (Excel's "Unicode text"), else Windows-1252/Latin-1;
`;`, tab, `,` or `|` delimiters; CRLF; quoted newlines; fields as long as the
file. Header names match as people write them: case, accents, blanks and
punctuation are ignored ("E-mail" is `email`, "Désinscrit" is `desinscrit`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from isoloir.policy.inputs import header_key  # the loader compares columns the same way
from isoloir.policy.model import Tabular

DELIMITERS = ",;\t|"
TABULAR_SUFFIXES = (".csv", ".tsv", ".txt")
MAX_FIELD_CHARS = 256 * 1024 * 1024  # never above the purge's file size cap
_SAMPLE = 64 * 1024
_PHONE_JUNK = re.compile(r"[\s.\-/()\u00a0\u202f]")
_PHONE_LIKE = re.compile(r"^[+\-]?[\d\s().\-/]*$")
_PHONE_EXTENSION = re.compile(r"\s*(?:poste|ext\.?|extension|x)\s*\d{1,6}\s*$", re.IGNORECASE)
_ANGLE_ADDRESS = re.compile(r"<([^<>\s]+@[^<>\s]+)>")

# French overseas departments: national prefix (4 digits after the 0) -> country code.
OVERSEAS_PREFIXES = {
    "262": "262",  # Réunion, landlines
    "692": "262",  # Réunion, mobiles
    "693": "262",
    "269": "262",  # Mayotte, landlines
    "639": "262",  # Mayotte, mobiles
    "590": "590",  # Guadeloupe, Saint-Martin, Saint-Barthélemy, landlines
    "690": "590",
    "691": "590",
    "596": "596",  # Martinique
    "696": "596",
    "697": "596",
    "594": "594",  # Guyane
    "694": "594",
}
_OVERSEAS_CODES = frozenset(OVERSEAS_PREFIXES.values())


class TabularError(ValueError):
    """A file is not a readable table (no header, binary content)."""


def is_tabular_name(name: str) -> bool:
    return name.lower().endswith(TABULAR_SUFFIXES)


# ------------------------------------------------------------------ decoding
@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # a codec name that writes the text back as it came
    bom: bytes


def decode_info(data: bytes) -> Decoded:
    """The text, and how to write it back: UTF-8 (BOM kept), UTF-16 with a BOM, else cp1252."""
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return Decoded(data[len(bom) :].decode(codec), codec, bom)
            except UnicodeDecodeError:
                raise TabularError("invalid UTF-16 text") from None
    if b"\x00" in data[:_SAMPLE]:
        raise TabularError("binary content")
    bom = codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b""
    try:
        return Decoded(data[len(bom) :].decode("utf-8"), "utf-8", bom)
    except UnicodeDecodeError:
        pass
    try:
        return Decoded(data.decode("cp1252"), "cp1252", b"")
    except UnicodeDecodeError:
        return Decoded(data.decode("latin-1"), "latin-1", b"")


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252 (Latin-1)."""
    return decode_info(data).text


def detect_delimiter(text: str) -> str:
    """The delimiter: the most frequent candidate in the header line, the sniffer on a tie."""
    sample = text[:_SAMPLE]
    header = sample.splitlines()[0] if sample else ""
    counts = {d: _count_outside_quotes(header, d) for d in DELIMITERS}
    best = max(counts.values())
    winners = [d for d in DELIMITERS if counts[d] == best]
    if best and len(winners) == 1:
        return winners[0]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return winners[0] if best else ","


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def detect_newline(text: str) -> str:
    """The line terminator of the first line ("\\r\\n" when there is none)."""
    end = text.find("\n")
    if end < 0:
        return "\r\n"
    return "\r\n" if end > 0 and text[end - 1] == "\r" else "\n"


# ------------------------------------------------------------------ reading
@dataclass
class Parsed:
    header: list[str]
    rows: list[dict[str, str]]
    delimiter: str = ","
    decoded: Decoded | None = None


def _raise_field_limit(chars: int) -> None:
    """Let one field be as long as the text (bounded), never lowering the limit."""
    wanted = min(max(chars + 1, 131072), MAX_FIELD_CHARS)
    if csv.field_size_limit() < wanted:
        csv.field_size_limit(wanted)


def parse(data: bytes) -> Parsed:
    """The CSV `data` decoded and split (header trimmed, rows padded)."""
    decoded = decode_info(data)
    text = decoded.text
    if not text.strip():
        return Parsed([], [], ",", decoded)
    delimiter = detect_delimiter(text)
    _raise_field_limit(len(text))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header, rows = from_records(reader)
    return Parsed(header, rows, delimiter, decoded)


def read_table(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """Header (trimmed names) and rows (every column present, '' when missing)."""
    parsed = parse(data)
    return parsed.header, parsed.rows


def from_records(records: Iterable[Sequence[str]]) -> tuple[list[str], list[dict[str, str]]]:
    """Header (the first non-blank record) and rows; blank records are skipped."""
    it = iter(records)
    raw_header: Sequence[str] = []
    for record in it:
        if any(cell.strip() for cell in record):
            raw_header = record
            break
    else:
        return [], []
    header = [h.strip().lstrip("\ufeff").strip() for h in raw_header]
    rows: list[dict[str, str]] = []
    for record in it:
        if not any(cell.strip() for cell in record):
            continue
        padded = list(record) + [""] * (len(header) - len(record))
        rows.append({name: padded[i] for i, name in enumerate(header) if name})
    return header, rows


# ------------------------------------------------------------------ columns
def find_column(header: Sequence[str], wanted: str | None) -> str | None:
    """The header name matching `wanted`: exact first, then ignoring case, accents,
    blanks and punctuation ("E-mail" ~ "email", "Téléphone" ~ "telephone")."""
    if not wanted or not wanted.strip():
        return None
    exact = wanted.strip()
    for name in header:
        if name.strip() == exact:
            return name
    key = header_key(wanted)
    if not key:
        return None
    for name in header:
        if header_key(name) == key:
            return name
    return None


def missing_columns(header: Sequence[str], tabular: Tabular) -> list[str]:
    """The declared consent, opt-out, email and phone columns absent from `header`."""
    declared = (
        ("consent", tabular.consent.column if tabular.consent else None),
        ("opt-out", tabular.opt_out.column if tabular.opt_out else None),
        ("email", tabular.email_column),
        ("phone", tabular.phone_column),
        *(("name", c) for c in tabular.name_columns),
        *(("address", c) for c in tabular.address_columns),
    )
    return [
        f"no {role} column {column!r}"
        for role, column in declared
        if column and find_column(header, column) is None
    ]


# ------------------------------------------------------------ normalisation
def normalise_email(value: str | None) -> str | None:
    """Lower-case, trimmed ("Name <addr>" and mailto: accepted); None when not an address."""
    if value is None:
        return None
    email = value.strip()
    angle = _ANGLE_ADDRESS.search(email)
    if angle:
        email = angle.group(1)
    email = email.strip().strip("\"'").strip().lower()
    if email.startswith("mailto:"):
        email = email[len("mailto:") :]
    email = email.rstrip(".")  # "bob@example.com." is the same mailbox (CLI review N10)
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or " " in email or "@" in domain:
        return None
    if ".." in domain or domain.startswith("."):
        return None  # no such domain: "bob@example..com" is a typo, never an entry
    return email


def normalise_phone(value: str | None, country_code: str = "33") -> str | None:
    """E.164 (+33612345678); French national numbers are assumed, overseas departments
    mapped to their own codes (0692… and +262 692… are the same). None when not a number."""
    if value is None:
        return None
    # Fullwidth or other script digits ("+33６…" from a phone's keyboard) as ASCII.
    value = "".join(
        str(unicodedata.decimal(c)) if c.isdecimal() else c
        for c in unicodedata.normalize("NFKC", value)
    )
    raw = _PHONE_EXTENSION.sub("", value.strip()).replace("(0)", "")
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
    digits = _international(digits, country_code)
    if not 8 <= len(digits) <= 15 or digits.startswith("0"):
        return None
    return "+" + digits


def _international(digits: str, country_code: str) -> str:
    """Drop a national 0 after the country code; French overseas numbers to their code."""
    for code in (country_code, *sorted(_OVERSEAS_CODES)):
        if digits.startswith(code + "0"):
            digits = code + digits[len(code) + 1 :]
            break
    if country_code == "33" and digits.startswith("33") and len(digits) == 11:
        overseas = OVERSEAS_PREFIXES.get(digits[2:5])
        if overseas:
            digits = overseas + digits[2:]
    return digits


# Words dropped from a name or an address, and abbreviations written out, so that the
# same person written twice ("12, r. de l'Exemple" / "12 RUE L EXEMPLE") gives one key.
_POSTAL_STOP = frozenset({"de", "du", "des", "la", "le", "les", "d", "l", "et", "cedex"})
_POSTAL_ABBREVIATIONS = {
    "r": "rue",
    "av": "avenue",
    "ave": "avenue",
    "bd": "boulevard",
    "bld": "boulevard",
    "blvd": "boulevard",
    "pl": "place",
    "ch": "chemin",
    "che": "chemin",
    "imp": "impasse",
    "all": "allee",
    "sq": "square",
    "rte": "route",
    "fg": "faubourg",
    "fbg": "faubourg",
    "st": "saint",
    "ste": "sainte",
    "res": "residence",
    "lot": "lotissement",
}
_POSTCODE = re.compile(r"\d{5}")
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss"})


def postal_words(text: str) -> set[str]:
    """The words of a name or an address without case, accents, punctuation, order, small
    words and postcodes (the commune's name identifies it; a 5-digit code is left out so
    that an address with and without its postcode match)."""
    folded = unicodedata.normalize("NFKD", text.casefold().translate(_LIGATURES))
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    words = set()
    for word in re.split(r"[^0-9a-z]+", plain):
        if word and word not in _POSTAL_STOP and not _POSTCODE.fullmatch(word):
            words.add(_POSTAL_ABBREVIATIONS.get(word, word))
    return words


def postal_identity(name: Iterable[str], address: Iterable[str]) -> str | None:
    """`name words|address words`, each sorted, or None when the name or the address is empty.

    The key of an opt-out with no e-mail or phone (a letter, a door-to-door "ne plus me
    solliciter"), hashed into the suppression list like the others.
    """
    name_words = set().union(*(postal_words(v) for v in name))
    address_words = set().union(*(postal_words(v) for v in address))
    if not name_words or not address_words:
        return None
    return " ".join(sorted(name_words)) + "|" + " ".join(sorted(address_words))


def row_postal(
    header: Sequence[str],
    row: dict[str, str],
    name_columns: Sequence[str],
    address_columns: Sequence[str],
) -> str | None:
    """The postal identity of a row, from the columns found in `header`."""
    if not name_columns or not address_columns:
        return None
    names = [c for c in (find_column(header, n) for n in name_columns) if c]
    addresses = [c for c in (find_column(header, a) for a in address_columns) if c]
    if not names or not addresses:
        return None
    return postal_identity((row.get(c) or "" for c in names), (row.get(c) or "" for c in addresses))


def safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas in a value written to a CSV (phone numbers kept)."""
    text = value.strip()
    if text[:1] in ("=", "@", "\t", "\r") or (
        text[:1] in ("+", "-") and not _PHONE_LIKE.match(text)
    ):
        return "'" + text
    return text


# -------------------------------------------------------------------- split
@dataclass
class Split:
    """What one table yields before it is destroyed."""

    rows: int = 0
    kept: list[tuple[str, ...]] = field(default_factory=list)  # minimised consenting rows
    opted_out: int = 0
    opted_out_without_identifier: int = 0  # opt-outs with no usable email, phone nor address
    consent_and_opt_out: int = 0  # opt-out wins: not kept
    already_suppressed: int = 0  # consenting rows of people who unsubscribed earlier: not kept
    emails: set[str] = field(default_factory=set)  # normalised opt-out identifiers
    phones: set[str] = field(default_factory=set)
    postals: set[str] = field(default_factory=set)  # name|address of opt-outs (postal_identity)

    def merge(self, other: Split) -> None:
        self.rows += other.rows
        self.kept.extend(other.kept)
        self.opted_out += other.opted_out
        self.opted_out_without_identifier += other.opted_out_without_identifier
        self.consent_and_opt_out += other.consent_and_opt_out
        self.already_suppressed += other.already_suppressed
        self.emails |= other.emails
        self.phones |= other.phones
        self.postals |= other.postals


def split_rows(
    header: Sequence[str],
    rows: Iterable[dict[str, str]],
    tabular: Tabular,
    keep_columns: Sequence[str],
    suppressed: Callable[[str | None, str | None, str | None], bool] | None = None,
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
        postal = row_postal(header, row, tabular.name_columns, tabular.address_columns)
        if opted:
            out.opted_out += 1
            if consented:
                out.consent_and_opt_out += 1
            if email:
                out.emails.add(email)
            if phone:
                out.phones.add(phone)
            if postal:
                out.postals.add(postal)
            if not email and not phone and not postal:
                out.opted_out_without_identifier += 1
        elif consented and suppressed is not None and suppressed(email, phone, postal):
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
