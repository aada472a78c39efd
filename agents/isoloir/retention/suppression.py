"""The suppression list: people who unsubscribed, kept as HMAC-SHA256 digests.

It lives in the agent's state directory (SQLite), outside every election, so an
opt-out survives the destruction of the file it was recorded in. Only digests
of normalised identifiers are stored (`email:` + lower-cased address,
`phone:` + E.164 number), keyed with the agent's secret: the list cannot be
read back into a contact file, only asked "is this person suppressed?".

The list records its key's identifier (an HMAC of a fixed label, never the
key): the purge, which creates the list, refuses to add to a list made with
another key; `suppression filter` only opens an existing list (never creates
one) and refuses another key, so a typo in the state directory or another
machine's key cannot silently remove nobody.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import re
import sqlite3
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from isoloir.policy.inputs import header_key
from isoloir.retention import tabular
from isoloir.statefiles import corrupt_db

DB_NAME = "suppression.sqlite"
KEY_ID_LABEL = b"isoloir-suppression-list-key-id/1"

# When a prospect file does not name its columns, every column whose header
# holds one of these words (compared without case, accents, blanks or
# punctuation: "N° de téléphone", "Téléphone portable", "E-mail 1") and whose
# cells hold addresses or numbers is used (CLI review N2).
EMAIL_WORDS = ("email", "courriel", "mail", "adressemel")
EMAIL_EXACT = ("mel",)
PHONE_WORDS = ("telephone", "phone", "mobile", "portable", "gsm", "msisdn", "numero", "sms")
PHONE_EXACT = ("tel", "tel1", "tel2", "telfixe", "telportable", "telmobile", "num", "no")
# The cells looked at to tell a column of identifiers from a look-alike
# ("Consentement téléphone: oui/non", "Mailing: oui").
_PROBE_CELLS = 2000
# Name and address columns: every one found is used (a postal opt-out's key, see
# tabular.postal_identity); a postcode column adds nothing, the commune's name does.
NAME_NAMES = ("prenom", "prenoms", "nom")
ADDRESS_NAMES = ("adresse", "adresse postale", "commune", "ville")


class SuppressionError(RuntimeError):
    """The list is missing, unreadable or made with another key; the message says which."""


def db_path(state_dir: Path) -> Path:
    return state_dir / "retention" / DB_NAME


def key_id(key: bytes) -> str:
    """Names the HMAC key without revealing it."""
    return hmac.new(key, KEY_ID_LABEL, hashlib.sha256).hexdigest()


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS suppressed ("
    " kind TEXT NOT NULL, digest TEXT NOT NULL, added_at TEXT NOT NULL,"
    " election TEXT NOT NULL, run_id TEXT NOT NULL,"
    " PRIMARY KEY (kind, digest))",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class SuppressionList:
    """The list opened for writing: created when absent (the purge's path).

    `SuppressionList.for_filtering` opens an existing list read-only instead.
    """

    def __init__(self, path: Path, key: bytes, *, _db: sqlite3.Connection | None = None) -> None:
        self.path = path
        self._key = key
        self.key_verified = True
        if _db is not None:
            self._db = _db
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._record_key_id()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise corrupt_db(
                path,
                exc,
                "do NOT start a new list without it: restore it from a backup, or the people "
                "it records would be contacted again",
            ) from None
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def for_filtering(cls, path: Path, key: bytes) -> SuppressionList:
        """An existing list, never created: SuppressionError when absent or of another key.

        A list written before key identifiers were recorded is accepted with
        `key_verified` False (the caller warns); the purge records the id on
        its next write.
        """
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise SuppressionError(f"no suppression list at {path} ({what})")
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None)
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.Error as exc:
            raise SuppressionError(f"cannot open the suppression list {path}: {exc}") from None
        if "suppressed" not in tables:
            db.close()
            raise SuppressionError(f"{path} is not a suppression list")
        store = cls(path, key, _db=db)
        stored = store._stored_key_id() if "meta" in tables else None
        if stored is None:
            store.key_verified = False
        elif stored != key_id(key):
            db.close()
            raise SuppressionError(
                f"the HMAC key does not match the suppression list {path} "
                "(another machine's or a new key): nobody could be matched"
            )
        return store

    def _stored_key_id(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()
        return str(row[0]) if row else None

    def _record_key_id(self) -> None:
        mine = key_id(self._key)
        stored = self._stored_key_id()
        if stored is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('key_id', ?)", (mine,))
            stored = self._stored_key_id()
        if stored != mine:
            raise SuppressionError(
                f"the HMAC key does not match the suppression list {self.path}: refusing to "
                "add entries no filter could match"
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SuppressionList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def add(
        self,
        emails: Iterable[str],
        phones: Iterable[str],
        *,
        postals: Iterable[str] = (),
        election: str,
        run_id: str,
        now: datetime,
    ) -> int:
        """Insert the digests in one transaction; returns how many entries `run_id` owns.

        Re-adding is harmless (the first insert is kept), so a replayed step
        reports the same count. `postals` are name|address keys
        (`tabular.postal_identity`): opt-outs with no e-mail or phone.
        """
        entries = [("email", self.digest("email", e)) for e in sorted(emails)]
        entries += [("phone", self.digest("phone", p)) for p in sorted(phones)]
        entries += [("postal", self.digest("postal", p)) for p in sorted(postals)]
        stamp = now.isoformat()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR IGNORE INTO suppressed VALUES (?, ?, ?, ?, ?)",
                [(kind, d, stamp, election, run_id) for kind, d in entries],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return self.count(run_id=run_id)

    def add_counted(
        self,
        emails: Iterable[str],
        phones: Iterable[str],
        *,
        postals: Iterable[str] = (),
        election: str,
        run_id: str,
        now: datetime,
    ) -> tuple[int, int]:
        """Like `add`, in one transaction; returns (added, already present) of the distinct
        identifiers given."""
        entries = sorted({("email", self.digest("email", e)) for e in emails})
        entries += sorted({("phone", self.digest("phone", p)) for p in phones})
        entries += sorted({("postal", self.digest("postal", p)) for p in postals})
        stamp = now.isoformat()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO suppressed VALUES (?, ?, ?, ?, ?)",
                [(kind, d, stamp, election, run_id) for kind, d in entries],
            )
            added = self._db.total_changes - before
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return added, len(entries) - added

    def count(self, *, run_id: str | None = None) -> int:
        if run_id is None:
            row = self._db.execute("SELECT COUNT(*) FROM suppressed").fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM suppressed WHERE run_id = ?", (run_id,)
            ).fetchone()
        return int(row[0])

    def count_kind(self, kind: str) -> int:
        """How many entries of one kind (email, phone, postal)."""
        row = self._db.execute("SELECT COUNT(*) FROM suppressed WHERE kind = ?", (kind,)).fetchone()
        return int(row[0])

    def contains(self, email: str | None, phone: str | None, postal: str | None = None) -> bool:
        """Whether this email or phone (normalised here), or this name|address key
        (`tabular.postal_identity`, already normalised), was suppressed."""
        normalised = (
            ("email", tabular.normalise_email(email)),
            ("phone", tabular.normalise_phone(phone)),
            ("postal", postal),
        )
        for kind, value in normalised:
            if value:
                row = self._db.execute(
                    "SELECT 1 FROM suppressed WHERE kind = ? AND digest = ?",
                    (kind, self.digest(kind, value)),
                ).fetchone()
                if row:
                    return True
        return False

    def holds_any(self, emails: Iterable[str], phones: Iterable[str], postal: str | None) -> bool:
        """Whether any of a row's identifiers (`Columns.of`) was suppressed."""
        return (
            any(self.contains(e, None) for e in emails)
            or any(self.contains(None, p) for p in phones)
            or (postal is not None and self.contains(None, None, postal))
        )


@dataclass(frozen=True)
class FilterResult:
    rows: int
    removed: int
    kept: int
    without_identifier: int  # rows with no usable email, phone nor name and address (kept)
    entries: int = 0  # the suppression list's size: what the rows were checked against
    encoding: str = "utf-8"  # the input's, kept in the output
    bom: bool = False
    columns: str = ""  # what the rows were matched on, as `Columns.describe` says


@dataclass(frozen=True)
class Columns:
    """The columns a table is matched on (header names, in the file's order)."""

    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # with `addresses`: a postal opt-out's key; both or neither
    addresses: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.emails or self.phones or self.names)

    def describe(self) -> str:
        named = [(c, "email") for c in self.emails] + [(c, "phone") for c in self.phones]
        shown = [f"{c} ({kind})" for c, kind in named]
        if self.names:
            shown.append(", ".join(self.names + self.addresses) + " (name and address)")
        return ", ".join(shown) or "none"

    def of(self, header: list[str], row: dict[str, str]) -> tuple[list[str], list[str], str | None]:
        """A row's normalised emails and phones (empty ones dropped) and postal key."""
        emails = [e for e in (tabular.normalise_email(row.get(c)) for c in self.emails) if e]
        phones = [p for p in (tabular.normalise_phone(row.get(c)) for c in self.phones) if p]
        postal = tabular.row_postal(header, row, self.names, self.addresses)
        return emails, phones, postal


def table_columns(
    header: list[str],
    rows: list[dict[str, str]],
    *,
    email_column: str | None = None,
    phone_column: str | None = None,
    name_columns: Iterable[str] | None = None,
    address_columns: Iterable[str] | None = None,
) -> Columns:
    """Every email and phone column of a parsed table (`find_columns`), and its
    name and address columns when it has both."""
    found = find_columns(
        header,
        lambda name: (row.get(name, "") for row in rows),
        email_column=email_column,
        phone_column=phone_column,
    )
    names = guess_all(header, name_columns, NAME_NAMES)
    addresses = guess_all(header, address_columns, ADDRESS_NAMES)
    if not (names and addresses):
        return found
    return Columns(found.emails, found.phones, tuple(names), tuple(addresses))


def _looks_like(key: str, words: tuple[str, ...], exact: tuple[str, ...]) -> bool:
    bare = key.rstrip("0123456789") or key
    return key in exact or bare in exact or any(w in key for w in words)


_FLAGS = frozenset(
    ("oui", "non", "yes", "no", "x", "o", "n", "y", "1", "0", "true", "false", "vrai", "faux",
     "ok", "stop", "-")
)  # fmt: skip


def _holds(values: Iterable[str]) -> bool:
    """Whether the column holds identifiers, not yes/no marks: a "Consentement
    téléphone" or "Mailing" column of oui/non is not a phone or email column. A
    column of anything else is (its bad cells are then named by line)."""
    seen = 0
    for value in values:
        text = value.strip().casefold()
        if not text:
            continue
        if text not in _FLAGS:
            return True
        seen += 1
        if seen >= _PROBE_CELLS:
            break
    return seen == 0


def find_columns(
    header: list[str],
    cells: Callable[[str], Iterable[str]],
    *,
    email_column: str | None = None,
    phone_column: str | None = None,
) -> Columns:
    """The email and phone columns of a table: the named ones, else every column
    whose header names an email or phone and whose cells hold some.

    `cells(name)`: that column's values. ValueError: a named column is absent."""
    chosen: dict[str, tuple[str, ...]] = {}
    for kind, explicit, words, exact in (
        ("email", email_column, EMAIL_WORDS, EMAIL_EXACT),
        ("phone", phone_column, PHONE_WORDS, PHONE_EXACT),
    ):
        if explicit:
            found = tabular.find_column(header, explicit)
            if found is None:
                raise ValueError(f"column {explicit!r} not in the file's header")
            chosen[kind] = (found,)
            continue
        candidates = [
            name
            for name in header
            if name and _looks_like(header_key(name), words, exact) and _holds(cells(name))
        ]
        chosen[kind] = tuple(candidates)
    phones = tuple(c for c in chosen["phone"] if c not in chosen["email"])
    return Columns(chosen["email"], phones)


def guess_column(header: list[str], explicit: str | None, names: tuple[str, ...]) -> str | None:
    """The explicit column (ValueError when missing), else the first known name found."""
    if explicit:
        found = tabular.find_column(header, explicit)
        if found is None:
            raise ValueError(f"column {explicit!r} not in the file's header")
        return found
    return next((c for c in (tabular.find_column(header, n) for n in names) if c), None)


def guess_all(
    header: list[str], explicit: Iterable[str] | None, names: tuple[str, ...]
) -> list[str]:
    """Every explicit column (ValueError when one is missing), else every known name found."""
    wanted = list(explicit or ())
    if wanted:
        return [c for c in (guess_column(header, w, names) for w in wanted) if c]
    found = (tabular.find_column(header, n) for n in names)
    return list(dict.fromkeys(c for c in found if c))


def filter_table(
    data: bytes,
    suppression: SuppressionList,
    *,
    email_column: str | None = None,
    phone_column: str | None = None,
    name_columns: Iterable[str] | None = None,
    address_columns: Iterable[str] | None = None,
) -> tuple[bytes, FilterResult]:
    """A copy of the CSV `data` without the rows of suppressed people.

    Same delimiter, line endings, encoding and byte-order mark as the input, so
    the spreadsheet that made it opens the result the same way.
    """
    parsed = tabular.parse(_without_sep_line(data))
    decoded = parsed.decoded
    assert decoded is not None
    header, rows = parsed.header, parsed.rows
    if not header:
        raise ValueError("empty file: no header")
    columns = table_columns(
        header,
        rows,
        email_column=email_column,
        phone_column=phone_column,
        name_columns=name_columns,
        address_columns=address_columns,
    )
    if not columns:
        raise ValueError(
            "no email, phone, or name and address columns found "
            "(use --email-column/--phone-column/--name-column/--address-column)"
        )
    explicit = email_column or phone_column or name_columns or address_columns
    if not explicit and (columns.emails or columns.phones):
        # A list holding numbers checked on email alone (or the reverse) would keep
        # every SMS opt-out in the "filtered" file (CLI review N2). A file with
        # neither (an electoral list: names and addresses) is matched on those.
        for kind, shown, found, flag in (
            ("phone", "phone numbers", columns.phones, "--phone-column"),
            ("email", "addresses", columns.emails, "--email-column"),
        ):
            held = suppression.count_kind(kind)
            if held and not found:
                raise ValueError(
                    f"the suppression list holds {held} {shown} but no column of this file "
                    f"holds any (matched on: {columns.describe()}): name that column with "
                    f"{flag}; to match on the others alone, name them with "
                    "--email-column/--phone-column/--name-column/--address-column"
                )
    out = io.StringIO(newline="")
    writer = csv.writer(
        out, delimiter=parsed.delimiter, lineterminator=tabular.detect_newline(decoded.text)
    )
    writer.writerow(header)
    removed = no_id = 0
    for row in rows:
        emails, phones, postal = columns.of(header, row)
        if not emails and not phones and not postal:
            no_id += 1
        if suppression.holds_any(emails, phones, postal):
            removed += 1
            continue
        writer.writerow([row.get(h, "") for h in header])
    result = FilterResult(
        rows=len(rows),
        removed=removed,
        kept=len(rows) - removed,
        without_identifier=no_id,
        entries=suppression.count(),
        encoding=decoded.encoding,
        bom=bool(decoded.bom),
        columns=columns.describe(),
    )
    return decoded.bom + out.getvalue().encode(decoded.encoding), result


def _without_sep_line(data: bytes) -> bytes:
    """The file without Excel's `sep=;` first line (it names the delimiter, which
    is found anyway), so the header is the line after it (CLI review N10)."""
    text = tabular.decode_info(data)
    first, newline, rest = text.text.partition("\n")
    if not _SEP_LINE.match(first.strip()):
        return data
    return text.bom + rest.encode(text.encoding)


_SEP_LINE = re.compile(r'^"?sep=.?"?$', re.IGNORECASE)


# ------------------------------------------------------------ adding by hand
ADD_ELECTION = "suppression-add"  # the `election` column of entries added by hand
_FIELD_SEPARATORS = re.compile(r"[;,\t|]")
_EXCEL_NUMBER = re.compile(r"^\d([.,]\d+)?E\+\d+$", re.IGNORECASE)


@dataclass
class Entries:
    """What `suppression add` read: normalised identifiers and the lines it could not use."""

    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    postals: list[str] = field(default_factory=list)  # name|address keys (--postal)
    without_identifier: int = 0  # table rows with neither an email nor a phone cell
    problems: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)
    columns: str = ""  # the columns of a table read, as `Columns.describe` says

    def take(self, value: str, where: str, reason: str | None = None) -> bool:
        found = identifier(value)
        if found is None:
            self.problems.append((where, _why(value, reason)))
            return False
        (self.emails if found[0] == "email" else self.phones).append(found[1])
        return True


def _why(value: str, reason: str | None = None) -> str:
    why = reason or "not an address or phone number"
    if _EXCEL_NUMBER.match(value.strip()):
        why += " (a number a spreadsheet shortened: format the column as Text)"
    return why


def identifier(value: str) -> tuple[str, str] | None:
    """("email", address) or ("phone", E.164), normalised as the purge records them."""
    text = value.strip()
    if "@" in text:
        email = tabular.normalise_email(text)
        return ("email", email) if email else None
    phone = tabular.normalise_phone(text)
    return ("phone", phone) if phone else None


def read_entries(
    data: bytes, *, email_column: str | None = None, phone_column: str | None = None
) -> Entries:
    """The identifiers of a file: a table with email or phone columns (found as
    `suppression filter` finds them, every one of them), else one address or number
    per line (an SMS gateway's STOP export; a first line without any digit or @ is a
    header). Excel's `sep=;` first line is skipped.

    ValueError: binary content, or an explicit column missing from the header."""
    text = tabular.decode_info(_without_sep_line(data)).text
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return Entries()
    delimiter = tabular.detect_delimiter("\n".join(lines[first:]))
    header = [
        h.strip().lstrip("\ufeff").strip()
        for h in next(csv.reader([lines[first]], delimiter=delimiter))
    ]
    if len(header) < 2 and not (email_column or phone_column):  # one value a line
        return _read_list(lines)
    tabular._raise_field_limit(len(text))

    def cells(name: str) -> Iterable[str]:
        index = header.index(name)
        reader = csv.reader(io.StringIO("\n".join(lines[first + 1 :])), delimiter=delimiter)
        for n, record in enumerate(reader):
            if n >= _PROBE_CELLS:
                return
            yield record[index] if index < len(record) else ""

    columns = find_columns(header, cells, email_column=email_column, phone_column=phone_column)
    if not columns:
        return _read_list(lines)
    out = _read_table(text, header, delimiter, columns)
    out.columns = columns.describe()
    return out


def _read_list(lines: list[str]) -> Entries:
    out = Entries()
    seen_value = False
    for number, line in enumerate(lines, start=1):
        value = line.strip()
        if not value:
            continue
        head = _FIELD_SEPARATORS.split(value, maxsplit=1)[0]
        if identifier(value) is not None or identifier(head) is not None:
            out.take(value if identifier(value) is not None else head, f"line {number}")
        elif not seen_value and not any(c.isdigit() or c == "@" for c in value):
            pass  # a header line (e.g. "numero")
        else:
            out.problems.append((f"line {number}", _why(value)))
        seen_value = True
    return out


def _read_table(text: str, header: list[str], delimiter: str, columns: Columns) -> Entries:
    out = Entries()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    wanted = [(header.index(c), "email") for c in columns.emails]
    wanted += [(header.index(c), "phone") for c in columns.phones]
    in_header = True
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue
        if in_header:
            in_header = False
            continue
        where = f"line {reader.line_num}"
        cells = [(record[i].strip() if i < len(record) else "", kind) for i, kind in wanted]
        present = [(cell, kind) for cell, kind in cells if cell]
        if not present:
            out.without_identifier += 1
        for cell, kind in present:
            reason = "not an address" if kind == "email" else "not a phone number"
            out.take(cell, where, reason)
    return out
