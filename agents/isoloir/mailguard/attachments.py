"""Attachments that hold personal data: CSV, TSV, XLSX, ODS, a vCard export
(`.vcf` with several cards: a phone's or a webmail's contacts), or a zip of them.

The kind is found from the content (a zip container's members, text that reads
as a table), the name and declared type only adding candidates: a contact file
renamed `photo.png` is still read. Every read is bounded: at most
`SAMPLE_BYTES` of decompressed text per table, `MAX_MEMBERS` zip entries,
`MAX_NESTED_BYTES` for a spreadsheet inside a zip, `MAX_PARTS` attachments.
Only counts leave this module (isoloir.exposure.pii never returns values).

An attachment that looks like such a file but cannot be read (encrypted zip,
corrupt container, over the bounds) counts as `unreadable`: the guard treats it
like one holding personal data, since nobody can say it does not.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import PurePosixPath
from typing import Final

from isoloir.exposure import pii

SAMPLE_BYTES: Final = 64 * 1024
MAX_MEMBERS: Final = 500
MAX_TABLE_MEMBERS: Final = 50
MAX_NESTED_BYTES: Final = 16 * 1024 * 1024
MAX_PARTS: Final = 100
TABLE_SUFFIXES: Final = frozenset({".csv", ".tsv"})  # .txt: by content only
SHEET_SUFFIXES: Final = frozenset({".xlsx", ".ods"})
ZIP_SUFFIXES: Final = frozenset({".zip"})
TABLE_TYPES: Final = frozenset({"text/csv", "text/tab-separated-values", "application/csv"})
_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06")
# Archives and compressed files the guard does not open (security N13): held as
# unreadable when they leave the party, since nobody can say what they hold.
_OTHER_ARCHIVES: Final = (
    b"\x1f\x8b",  # gzip
    b"BZh",  # bzip2
    b"\xfd7zXZ\x00",  # xz
    b"7z\xbc\xaf\x27\x1c",  # 7-Zip
    b"Rar!\x1a\x07",  # RAR
    b"\x28\xb5\x2f\xfd",  # zstd
    b"MSCF",  # cabinet
)
_ODS_MIMETYPE: Final = b"application/vnd.oasis.opendocument.spreadsheet"
_DELIMITERS: Final = (",", ";", "\t", "|")
# vCard (RFC 6350, https://www.rfc-editor.org/rfc/rfc6350): one card is usually
# the sender's own signature; two or more are a contacts export.
VCARD_SUFFIXES: Final = frozenset({".vcf", ".vcard"})
VCARD_TYPES: Final = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
VCARD_MIN_CARDS: Final = 2
_VCARD_BEGIN = re.compile(rb"(?im)^[ \t]*BEGIN[ \t]*:[ \t]*VCARD[ \t]*\r?$")


@dataclass(frozen=True)
class Scan:
    attachments: int = 0  # leaf parts that are not the message's body text
    spreadsheets: int = 0  # those read as tables (CSV, TSV, XLSX, ODS, in a zip or not)
    personal: int = 0  # tables where the recogniser found personal data
    unreadable: int = 0  # looked like tables or containers, could not be read

    @property
    def flagged(self) -> int:
        return self.personal + self.unreadable


@dataclass
class _Tally:
    spreadsheets: int = 0
    personal: int = 0
    unreadable: int = 0

    def vcard(self, cards: int) -> None:
        """A vCard file: an export of several cards is a table of people."""
        if cards >= VCARD_MIN_CARDS:
            self.spreadsheets += 1
            self.personal += 1

    def table(self, report: pii.PiiReport | None) -> None:
        if report is None:
            self.unreadable += 1
            return
        self.spreadsheets += 1
        if report.has_personal_data:
            self.personal += 1


def _suffix(name: str | None) -> str:
    return PurePosixPath(name or "").suffix.lower()


def looks_tabular(head: bytes) -> bool:
    """Text (no NUL) whose first two non-blank lines carry the same delimiter, as many times."""
    if b"\x00" in head:
        return False
    text = head.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()][:3]
    if len(lines) < 2:
        return False
    for sep in _DELIMITERS:
        counts = {line.count(sep) for line in lines[:2]}
        if len(counts) == 1 and counts.pop() > 0:
            return True
    return False


def vcard_cards(data: bytes) -> int:
    """How many vCards `data` holds (0: not a vCard file)."""
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not _VCARD_BEGIN.match(text[:4096].split(b"\n", 1)[0] + b"\n"):
        return 0
    return len(_VCARD_BEGIN.findall(text))


def _text_report(data: bytes, size: int) -> pii.PiiReport | None:
    return pii.sample_stream(io.BytesIO(data), "attachment.csv", size, limit=SAMPLE_BYTES)


def _sheet_report(zf: zipfile.ZipFile, kind: str) -> pii.PiiReport | None:
    """XLSX: shared strings, else the first sheet (numbers kept inline); ODS: content.xml."""
    members = (
        ("xl/sharedStrings.xml", "xl/worksheets/sheet1.xml") if kind == "xlsx" else ("content.xml",)
    )
    names = set(zf.namelist())
    reports = []
    for member in members:
        if member not in names:
            continue
        info = zf.getinfo(member)
        if info.flag_bits & 0x1:
            return None
        with zf.open(info) as stream:
            raw = stream.read(SAMPLE_BYTES)
        text = pii.xml_text(raw.decode("utf-8", errors="replace"))
        reports.append(pii.analyse_text(text, line_based=kind == "ods"))
    return pii.merge(reports) if reports else None


def _container_kind(zf: zipfile.ZipFile) -> str:
    names = set(zf.namelist()[:MAX_MEMBERS])
    if "xl/workbook.xml" in names or "xl/sharedStrings.xml" in names:
        return "xlsx"
    if "mimetype" in names:
        info = zf.getinfo("mimetype")
        if not info.flag_bits & 0x1:
            with zf.open(info) as stream:
                if stream.read(len(_ODS_MIMETYPE)) == _ODS_MIMETYPE:
                    return "ods"
    if "content.xml" in names and "META-INF/manifest.xml" in names:
        return "ods"
    return "zip"


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    with zf.open(info) as stream:
        return stream.read(limit)


def _scan_zip_members(zf: zipfile.ZipFile, tally: _Tally, depth: int) -> None:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        tally.unreadable += 1
        return
    tables = 0
    for info in infos:
        if info.is_dir():
            continue
        if tables >= MAX_TABLE_MEMBERS:
            tally.unreadable += 1
            return
        suffix = _suffix(info.filename)
        if info.flag_bits & 0x1:
            if suffix in TABLE_SUFFIXES | SHEET_SUFFIXES | ZIP_SUFFIXES:
                tally.unreadable += 1
                tables += 1
            continue
        head = _read_member(zf, info, SAMPLE_BYTES)
        if is_archive(head):
            tables += 1
            tally.unreadable += 1
        elif vcard_cards(head):
            tables += 1
            tally.vcard(vcard_cards(_read_member(zf, info, MAX_NESTED_BYTES)))
        elif head.startswith(_ZIP_MAGIC):
            tables += 1
            if depth > 0 or info.file_size > MAX_NESTED_BYTES:
                tally.unreadable += 1
                continue
            _scan_container(_read_member(zf, info, MAX_NESTED_BYTES + 1), tally, depth + 1)
        elif suffix in TABLE_SUFFIXES or looks_tabular(head[:4096]):
            tables += 1
            tally.table(_text_report(head, info.file_size))


def _scan_container(data: bytes, tally: _Tally, depth: int = 0) -> None:
    if len(data) > MAX_NESTED_BYTES and depth > 0:
        tally.unreadable += 1
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            kind = _container_kind(zf)
            if kind == "zip":
                _scan_zip_members(zf, tally, depth)
            else:
                tally.table(_sheet_report(zf, kind))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            RuntimeError, NotImplementedError, KeyError):  # fmt: skip
        tally.unreadable += 1


def is_archive(data: bytes) -> bool:
    """A compressed file or an archive other than zip (tar: "ustar" at 257)."""
    return data.startswith(_OTHER_ARCHIVES) or data[257:262] == b"ustar"


def attachment_parts(msg: Message) -> list[Message]:
    """Leaf parts that are not the message's body text (bounded by the caller).

    The body is the first inline text/plain and the first inline text/html
    part; any further inline text part is read like an attachment (security
    N13: a table pasted as a second text part)."""
    out = []
    seen_body: set[str] = set()
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        inline = not part.get_filename() and part.get_content_disposition() != "attachment"
        if ctype in ("text/plain", "text/html") and inline and ctype not in seen_body:
            seen_body.add(ctype)
            continue
        out.append(part)
    return out


def _scan_part(part: Message, tally: _Tally) -> None:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes) or not data:
        return
    name_suffix = _suffix(part.get_filename())
    if data.startswith(_ZIP_MAGIC):
        _scan_container(data, tally)
        return
    if is_archive(data):
        tally.unreadable += 1
        return
    cards = vcard_cards(data)
    if cards:
        tally.vcard(cards)
        return
    if part.get_content_type() in VCARD_TYPES or name_suffix in VCARD_SUFFIXES:
        tally.unreadable += 1  # named or declared a vCard, but not one
        return
    declared = part.get_content_type() in TABLE_TYPES or name_suffix in TABLE_SUFFIXES
    head = data[:SAMPLE_BYTES]
    if declared and b"\x00" not in head[:4096] or looks_tabular(head[:4096]):
        tally.table(_text_report(head, len(data)))
    elif name_suffix in SHEET_SUFFIXES | ZIP_SUFFIXES:
        tally.unreadable += 1  # named a spreadsheet or zip, but not a zip container


def scan(msg: Message) -> Scan:
    """Counts of the message's attachments, tables and tables holding personal data."""
    parts = attachment_parts(msg)
    tally = _Tally()
    for part in parts[:MAX_PARTS]:
        _scan_part(part, tally)
    if len(parts) > MAX_PARTS:
        tally.unreadable += len(parts) - MAX_PARTS
    return Scan(len(parts), tally.spreadsheets, tally.personal, tally.unreadable)
