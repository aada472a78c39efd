"""Recognise French personal data in a small sample of a file.

The recogniser returns counts per kind of data and an estimated number of
records; it never returns, logs or stores the values it matched.

Kinds: French phone numbers (+33, 0033, national notation with spaces, dots,
dashes or nothing), emails, postal addresses (a street line followed by a
5-digit postcode), social-security numbers (NIR, key checked, Corsica 2A/2B)
and IBANs (mod-97 checksum checked).

The sampler reads at most `SAMPLE_BYTES` of a file: the head of CSV, TSV and
TXT files; for XLSX and ODS (zip containers) the head of the shared strings or
the content XML, through a bounded read of the decompressed stream. It opens
files with O_NOFOLLOW so a symlink is never followed.
"""

from __future__ import annotations

import bisect
import errno
import os
import re
import stat
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from isoloir.i18n import N_

SAMPLE_BYTES: Final = 1024
KINDS: Final = ("phone", "email", "address", "nir", "iban")
TEXT_SUFFIXES: Final = frozenset({".csv", ".tsv", ".txt"})
ZIP_MEMBERS: Final = {".xlsx": "xl/sharedStrings.xml", ".ods": "content.xml"}
SAMPLED_SUFFIXES: Final = TEXT_SUFFIXES | frozenset(ZIP_MEMBERS)

# Labels used in findings and breach-register drafts (no values, only kinds).
KIND_LABELS: Final = {
    "phone": N_("phone numbers"),
    "email": N_("email addresses"),
    "address": N_("postal addresses"),
    "nir": N_("social-security numbers (NIR)"),
    "iban": N_("bank account numbers (IBAN)"),
}

_SEP = r"[ \t.\-]?"

_NIR_RE = re.compile(
    r"(?<![\w])"
    r"(?P<sex>[1-478])" + _SEP + r"(?P<year>\d{2})" + _SEP + r"(?P<month>0[1-9]|1[0-2]|[2-9]\d)"
    r"" + _SEP + r"(?P<dept>\d{2}|2[ABab])" + _SEP + r"(?P<commune>\d{3})"
    r"" + _SEP + r"(?P<order>\d{3})" + _SEP + r"(?P<key>\d{2})(?![\w])"
)

_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}(?![a-z0-9])")

# IBAN lengths of the countries most likely to appear; others: any 15..34.
_IBAN_LENGTHS: Final = {
    "FR": 27, "MC": 27, "DE": 22, "BE": 16, "ES": 24, "IT": 27, "LU": 20, "NL": 18,
    "PT": 25, "CH": 21, "GB": 22, "IE": 22, "AT": 20, "GR": 27, "PL": 28,
}  # fmt: skip

_MAYBE_IBAN = re.compile(r"[A-Z]{2}\d{2}")

_PHONE_RE = re.compile(
    r"(?<![\w+])"
    r"(?:(?:\+|00)33" + _SEP + r"(?:\(0\)" + _SEP + r")?|0)"
    r"[1-9](?:" + _SEP + r"\d{2}){4}"
    r"(?![\w])"
)

_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)

_STREET_TYPES = (
    r"rue|avenue|av\.|bd|boulevard|place|pl\.|chemin|ch\.|all[ée]e|impasse|imp\.|route|rte|"
    r"quai|cours|square|sq\.|r[ée]sidence|lotissement|lieu-dit|hameau|passage|voie|"
    r"faubourg|fg|villa|cit[ée]|mont[ée]e|sentier|esplanade|parvis|rond-point"
)
# A cheap prefilter: the address pattern only runs when a street word is present.
_WORD = re.compile(r"[a-zà-ÿ-]+")
_STREET_WORDS = frozenset(
    w.replace("\\.", "").replace("[ée]", "e") for w in _STREET_TYPES.split("|")
) | frozenset({"allée", "résidence", "cité", "montée"})
_ADDRESS_RE = re.compile(
    r"(?<![\w])\d{1,4}(?: ?(?:bis|ter|quater|[A-D]))?,? (?:" + _STREET_TYPES + r")\b"
    r"[^\n\r]{1,80}?"
    r"(?<![\d])(?P<postcode>(?:0[1-9]|[1-8]\d|9[0-8])\d{3})(?!\d)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PiiReport:
    """What a sample holds, by kind and count only."""

    counts: Mapping[str, int] = field(default_factory=dict)
    records_sampled: int = 0  # records (lines, rows) with personal data in the sample
    estimated_records: int = 0  # extrapolated to the whole file
    sampled_bytes: int = 0
    source: str = ""  # "text", "xlsx", "ods" or "" when nothing was sampled

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if self.counts.get(k, 0) > 0)

    @property
    def has_personal_data(self) -> bool:
        return bool(self.kinds)

    def to_evidence(self) -> dict[str, object]:
        return {
            "pii_counts": {k: self.counts[k] for k in self.kinds},
            "pii_records_sampled": self.records_sampled,
            "pii_estimated_records": self.estimated_records,
            "sampled_bytes": self.sampled_bytes,
        }


def nir_key_valid(text: str) -> bool:
    """True when a 15-character NIR (spaces removed) carries the right key."""
    value = re.sub(r"[ \t.\-]", "", text).upper()
    if len(value) != 15:
        return False
    body, key = value[:13], value[13:]
    if not key.isdigit():
        return False
    dept = body[5:7]
    if dept == "2A":
        number = int(body[:5] + "19" + body[7:])
    elif dept == "2B":
        number = int(body[:5] + "18" + body[7:])
    elif body.isdigit():
        number = int(body)
    else:
        return False
    return 97 - number % 97 == int(key)


def iban_valid(text: str) -> bool:
    """True when an IBAN (spaces allowed) has a valid length and mod-97 checksum."""
    value = text.replace(" ", "").upper()
    if not 15 <= len(value) <= 34 or not value.isalnum():
        return False
    if not (value[:2].isalpha() and value[2:4].isdigit()):
        return False
    expected = _IBAN_LENGTHS.get(value[:2])
    if expected is not None and len(value) != expected:
        return False
    rearranged = value[4:] + value[:4]
    digits = "".join(str(int(c, 36)) for c in rearranged)
    return int(digits) % 97 == 1


def _iban_in(candidate: str) -> tuple[int, int] | None:
    """The span of a valid IBAN at the start of `candidate`, trimming greedy tails."""
    compact_len = 0
    ends: list[int] = []
    for i, char in enumerate(candidate):
        if char != " ":
            compact_len += 1
            ends.append(i + 1)
    expected = _IBAN_LENGTHS.get(candidate[:2])
    lengths = [expected] if expected is not None else list(range(min(compact_len, 34), 14, -1))
    for length in lengths:
        if length <= compact_len and iban_valid(candidate[: ends[length - 1]]):
            return 0, ends[length - 1]
    return None


def find_kinds(text: str) -> dict[str, list[tuple[int, int]]]:
    """Spans of every recognised value, by kind. Internal: callers keep counts only.

    Kinds are tried from the most specific (IBAN, NIR) to the least (phone,
    address); a later kind skips text an earlier one already claimed.
    """
    spans: dict[str, list[tuple[int, int]]] = {k: [] for k in KINDS}
    mask = bytearray(len(text))  # 1 where a value was already recognised
    if _MAYBE_IBAN.search(text):
        for m in _IBAN_RE.finditer(text):
            hit = _iban_in(m.group(0))
            if hit is not None:
                start, end = m.start() + hit[0], m.start() + hit[1]
                spans["iban"].append((start, end))
                mask[start:end] = b"\x01" * (end - start)
    for kind, regex in (("nir", _NIR_RE), ("email", _EMAIL_RE), ("phone", _PHONE_RE)):
        if kind == "email" and "@" not in text:
            continue
        found = spans[kind]
        for m in regex.finditer(text):
            start, end = m.span()
            if mask.find(1, start, end) >= 0:
                continue
            if kind == "nir" and not nir_key_valid(m.group(0)):
                continue
            found.append((start, end))
            mask[start:end] = b"\x01" * (end - start)
    if not _STREET_WORDS.isdisjoint(_WORD.findall(text.lower())):
        for m in _ADDRESS_RE.finditer(text):
            if not mask[m.start()]:
                spans["address"].append(m.span())
    return spans


def analyse_text(
    text: str, *, line_based: bool = True, scale: float = 1.0, sampled_bytes: int | None = None
) -> PiiReport:
    """Count personal data in `text`; `scale` extrapolates records to the whole file."""
    spans = find_kinds(text)
    counts = {k: len(v) for k, v in spans.items() if v}
    if line_based:
        starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        lines_hit: set[int] = set()
        for kind_spans in spans.values():
            for start, _ in kind_spans:
                lines_hit.add(bisect.bisect_right(starts, start))
        records = len(lines_hit)
    else:
        records = max(counts.values(), default=0)
    estimated = round(records * max(scale, 1.0)) if records else 0
    return PiiReport(
        counts=counts,
        records_sampled=records,
        estimated_records=max(estimated, records),
        sampled_bytes=len(text.encode()) if sampled_bytes is None else sampled_bytes,
        source="text",
    )


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(raw) - 3:  # a multi-byte character cut by the sample bound
            return raw[: exc.start].decode("utf-8", errors="replace")
        return raw.decode("cp1252", errors="replace")


def _drop_partial_line(text: str) -> str:
    cut = text.rfind("\n")
    return text[: cut + 1] if cut > 0 else text


_XML_BREAKS = re.compile(r"</(?:si|table:table-row|row)>|<(?:text:line-break|br)\s*/>")
_XML_CELL_END = re.compile(r"</(?:text:p|table:table-cell|c)>")
_XML_TAG = re.compile(r"<[^>]*>?")
_XML_ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&"}


def xml_text(fragment: str) -> str:
    """Text of a possibly truncated XML fragment: rows become lines, cells tabs."""
    out = _XML_BREAKS.sub("\n", fragment)
    out = _XML_CELL_END.sub("\t", out)
    out = _XML_TAG.sub("", out)
    for entity, char in _XML_ENTITIES.items():
        out = out.replace(entity, char)
    return out


_NOATIME: Final = getattr(os, "O_NOATIME", 0)
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _open_nofollow(path: str | bytes | os.PathLike[str]) -> int:
    """Open read-only, never through a symlink; without touching atime when allowed.

    O_NOATIME is refused (EPERM) unless the caller owns the file or has
    CAP_FOWNER: the agent's unprivileged user reading a file another account
    owns must retry without it, or every such file would go unsampled.
    """
    if _NOATIME:
        try:
            return os.open(path, _OPEN_FLAGS | _NOATIME)
        except PermissionError as exc:
            if exc.errno != errno.EPERM:
                raise
    return os.open(path, _OPEN_FLAGS)


def sample_file(
    path: str | bytes | os.PathLike[str],
    *,
    limit: int = SAMPLE_BYTES,
    expect: tuple[int, int] | None = None,
) -> PiiReport | None:
    """Sample a file for personal data; None when the type is not sampled or unreadable.

    Reads at most `limit` bytes of text (of the decompressed member for zip
    containers); a 10 GiB sparse file costs one small read. Only a regular file
    is read; with `expect` (st_dev, st_ino), only that very file: a path whose
    parent was swapped for a symlink since the walk leads elsewhere and is not read.
    """
    name = os.fsdecode(os.path.basename(os.fspath(path)))
    if Path(name).suffix.lower() not in SAMPLED_SUFFIXES:
        return None
    try:
        fd = _open_nofollow(path)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb", closefd=True) as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            if expect is not None and (st.st_dev, st.st_ino) != expect:
                return None
            return sample_stream(fh, name, st.st_size, limit=limit)
    except OSError:
        return None


def sample_stream(
    fh: BinaryIO, name: str, size: int, *, limit: int = SAMPLE_BYTES
) -> PiiReport | None:
    """Sample an open, seekable binary stream of `size` bytes named `name`."""
    suffix = Path(name).suffix.lower()
    if suffix not in SAMPLED_SUFFIXES:
        return None
    try:
        if suffix in TEXT_SUFFIXES:
            raw = fh.read(limit)
            text = _decode(raw)
            if size > len(raw):
                text = _drop_partial_line(text)
            used = len(text.encode())
            scale = size / used if used else 1.0
            return analyse_text(text, scale=scale, sampled_bytes=len(raw))
        return _sample_zip(fh, ZIP_MEMBERS[suffix], suffix.lstrip("."), limit)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError, EOFError):
        return None


def _sample_zip(fh: BinaryIO, member: str, source: str, limit: int) -> PiiReport | None:
    with zipfile.ZipFile(fh) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            return None
        with zf.open(info) as stream:
            raw = stream.read(limit)
    text = xml_text(_decode(raw))
    if info.file_size > len(raw):
        text = _drop_partial_line(text)
    scale = info.file_size / len(raw) if raw else 1.0
    report = analyse_text(text, line_based=(source == "ods"), scale=scale, sampled_bytes=len(raw))
    return PiiReport(
        counts=report.counts,
        records_sampled=report.records_sampled,
        estimated_records=report.estimated_records,
        sampled_bytes=report.sampled_bytes,
        source=source,
    )


def merge(reports: Iterable[PiiReport]) -> PiiReport:
    counts: dict[str, int] = {}
    records = estimated = sampled = 0
    for r in reports:
        for k, v in r.counts.items():
            counts[k] = counts.get(k, 0) + v
        records += r.records_sampled
        estimated += r.estimated_records
        sampled += r.sampled_bytes
    return PiiReport(counts, records, estimated, sampled, "merged")
