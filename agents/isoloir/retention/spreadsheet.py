"""Read-only, bounded reading of `.xlsx` and `.ods` spreadsheets for the purge.

Only the standard library: `zipfile` and `xml.etree`. Every sheet becomes one
table (a list of records, the first non-blank one being the header). Limits:
the archive's member count, each XML member's uncompressed size (checked on
the declared size and again while reading, so a lying header cannot inflate it),
the compression ratio (a zip bomb is refused), rows and cells. A member with a
DOCTYPE (hence any entity declaration) is refused; `xml.etree` never fetches
external entities, and refusing DOCTYPE also rules out entity expansion.
Anything outside the limits raises `SpreadsheetError` with the reason: the
purge then keeps the file and reports it.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from xml.etree import ElementTree

SPREADSHEET_SUFFIXES = (".xlsx", ".ods")
UNSUPPORTED_SUFFIXES = (".xls", ".xlsm", ".xlsb", ".numbers")  # reported, never read
MAX_MEMBERS = 10_000
MAX_MEMBER_BYTES = 128 * 1024 * 1024  # one uncompressed XML part
MAX_TOTAL_BYTES = 256 * 1024 * 1024  # every part read, together
MAX_RATIO = 200  # uncompressed / compressed, per member
MAX_ROWS = 1_048_576  # a sheet's rows (Excel's own limit)
MAX_CELLS = 20_000_000  # every cell of the workbook, repeats included
MAX_COLUMNS = 16_384

_CHUNK = 1024 * 1024
_CELL_REF = re.compile(r"^([A-Za-z]{1,3})")


class SpreadsheetError(ValueError):
    """The spreadsheet cannot be read within the limits; the message says why."""


@dataclass
class Sheet:
    name: str
    records: list[list[str]]


def is_spreadsheet_name(name: str) -> bool:
    return name.lower().endswith(SPREADSHEET_SUFFIXES)


def is_unsupported_name(name: str) -> bool:
    return name.lower().endswith(UNSUPPORTED_SUFFIXES)


def read(data: bytes, name: str) -> list[Sheet]:
    """The sheets of the `.xlsx` or `.ods` file `name` whose bytes are `data`."""
    lowered = name.lower()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            budget = _Budget(zf)
            if lowered.endswith(".xlsx"):
                return _read_xlsx(budget)
            if lowered.endswith(".ods"):
                return _read_ods(budget)
    except SpreadsheetError:
        raise
    except ElementTree.ParseError as exc:
        raise SpreadsheetError(f"malformed XML ({exc})") from None
    except RecursionError:
        raise SpreadsheetError("XML nested too deeply") from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        ValueError,
        RuntimeError,  # encrypted members
    ) as exc:
        raise SpreadsheetError(f"not a valid spreadsheet archive ({exc})") from None
    raise SpreadsheetError("not an .xlsx or .ods file")


# ------------------------------------------------------------------ bounds
class _Budget:
    """Reads members of one archive within the size, ratio and cell limits."""

    def __init__(self, zf: zipfile.ZipFile) -> None:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise SpreadsheetError(f"more than {MAX_MEMBERS} parts in the archive")
        self.zf = zf
        self.names = {i.filename for i in infos}
        self.read_bytes = 0
        self.cells = 0

    def member(self, name: str) -> bytes | None:
        """The bytes of XML member `name` (None when absent), bounded and DOCTYPE-free."""
        if name not in self.names:
            return None
        info = self.zf.getinfo(name)
        if info.file_size > MAX_MEMBER_BYTES:
            raise SpreadsheetError(f"part {name} is larger than {MAX_MEMBER_BYTES} bytes")
        if info.file_size > MAX_RATIO * max(info.compress_size, 1024):
            raise SpreadsheetError(f"part {name} is compressed more than {MAX_RATIO}:1")
        data = self._read(info)
        head = data[:4]
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
            raise SpreadsheetError(f"part {name} is not UTF-8 XML")
        if b"<!doctype" in data.lower() or b"<!entity" in data.lower():
            raise SpreadsheetError(f"part {name} declares a DOCTYPE: refused")
        return data

    def _read(self, info: zipfile.ZipInfo) -> bytes:
        chunks: list[bytes] = []
        size = 0
        with self.zf.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                self.read_bytes += len(chunk)
                if size > MAX_MEMBER_BYTES or size > info.file_size:
                    raise SpreadsheetError(f"part {info.filename} is larger than declared")
                if self.read_bytes > MAX_TOTAL_BYTES:
                    raise SpreadsheetError(f"the parts exceed {MAX_TOTAL_BYTES} bytes together")
                chunks.append(chunk)
        return b"".join(chunks)

    def count(self, cells: int) -> None:
        self.cells += cells
        if self.cells > MAX_CELLS:
            raise SpreadsheetError(f"more than {MAX_CELLS} cells")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(elem: ElementTree.Element, local: str) -> str | None:
    for key, value in elem.attrib.items():
        if _local(key) == local:
            return value
    return None


def _events(data: bytes) -> Iterator[tuple[str, ElementTree.Element]]:
    """(event, element) pairs, parsed incrementally (the caller clears what it used)."""
    parser: ElementTree.XMLPullParser[ElementTree.Element] = ElementTree.XMLPullParser(
        events=("start", "end")
    )
    view = memoryview(data)
    for start in range(0, len(data), _CHUNK):
        parser.feed(bytes(view[start : start + _CHUNK]))
        yield from _pairs(parser)
    parser.close()
    yield from _pairs(parser)


def _pairs(
    parser: ElementTree.XMLPullParser[ElementTree.Element],
) -> Iterator[tuple[str, ElementTree.Element]]:
    for item in parser.read_events():
        if len(item) == 2 and isinstance(item[1], ElementTree.Element):
            yield str(item[0]), item[1]


def _root(data: bytes) -> ElementTree.Element:
    """The document element of a small part (workbook, relationships)."""
    root: ElementTree.Element | None = None
    for event, elem in _events(data):
        if root is None and event == "start":
            root = elem  # complete once every event was read
    if root is None:
        raise SpreadsheetError("empty XML part")
    return root


def _add_row(records: list[list[str]], row: list[str], repeat: int, budget: _Budget) -> None:
    while row and not row[-1].strip():
        row.pop()  # trailing blank cells (a sheet's full width)
    if not row:
        return  # blank rows are skipped by the table reader anyway
    if len(records) + repeat > MAX_ROWS:
        raise SpreadsheetError(f"more than {MAX_ROWS} rows in a sheet")
    budget.count(len(row) * repeat)
    for _ in range(repeat):
        records.append(list(row))


# -------------------------------------------------------------------- xlsx
_XLSX_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _xlsx_sheet_parts(budget: _Budget) -> list[tuple[str, str]]:
    """(sheet name, part) in the workbook's order; the worksheets by name as a fallback."""
    workbook = budget.member("xl/workbook.xml")
    rels = budget.member("xl/_rels/workbook.xml.rels")
    out: list[tuple[str, str]] = []
    if workbook is not None and rels is not None:
        targets: dict[str, str] = {}
        for elem in _root(rels):
            if _local(elem.tag) == "Relationship":
                target = elem.get("Target", "")
                path = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
                targets[elem.get("Id", "")] = posixpath.normpath(path)
        for elem in _root(workbook).iter():
            if _local(elem.tag) == "sheet":
                rid = _attr(elem, "id") or ""
                part = targets.get(rid)
                if part and part in budget.names:
                    out.append((elem.get("name", part), part))
    if not out:
        parts = sorted(
            n for n in budget.names if n.startswith("xl/worksheets/") and n.endswith(".xml")
        )
        out = [(posixpath.basename(p), p) for p in parts]
    return out


def _shared_strings(budget: _Budget) -> list[str]:
    data = budget.member("xl/sharedStrings.xml")
    if data is None:
        return []
    strings: list[str] = []
    for event, elem in _events(data):
        if event == "end" and _local(elem.tag) == "si":
            strings.append(_si_text(elem))
            elem.clear()
    return strings


def _si_text(si: ElementTree.Element) -> str:
    """The text of a shared or inline string (rich runs joined, phonetic runs skipped)."""
    parts: list[str] = []

    def walk(elem: ElementTree.Element) -> None:
        for child in elem:
            name = _local(child.tag)
            if name == "rPh":
                continue
            if name == "t":
                parts.append(child.text or "")
            else:
                walk(child)

    walk(si)
    return "".join(parts)


def _column_index(ref: str | None, default: int) -> int:
    if not ref:
        return default
    match = _CELL_REF.match(ref)
    if not match:
        return default
    index = 0
    for letter in match.group(1).upper():
        index = index * 26 + (ord(letter) - ord("A") + 1)
    return index - 1


def _number(text: str) -> str:
    """Excel's numbers as people see them: 612345678, not 612345678.0."""
    try:
        value = float(text)
    except ValueError:
        return text
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return text


def _xlsx_cell(cell: ElementTree.Element, strings: list[str]) -> str:
    kind = cell.get("t", "n")
    value = next((c.text or "" for c in cell if _local(c.tag) == "v"), "")
    if kind == "s":
        try:
            return strings[int(value)]
        except (ValueError, IndexError):
            return ""
    if kind == "inlineStr":
        inline = next((c for c in cell if _local(c.tag) == "is"), None)
        return _si_text(inline) if inline is not None else ""
    if kind == "n":
        return _number(value)
    return value  # str, b (1/0), e, d


def _read_xlsx(budget: _Budget) -> list[Sheet]:
    strings = _shared_strings(budget)
    sheets: list[Sheet] = []
    for name, part in _xlsx_sheet_parts(budget):
        data = budget.member(part)
        if data is None:
            continue
        records: list[list[str]] = []
        for event, elem in _events(data):
            if event == "end" and _local(elem.tag) == "row":
                _add_row(records, _xlsx_row(elem, strings), 1, budget)
                elem.clear()
        sheets.append(Sheet(name, records))
    if not sheets:
        raise SpreadsheetError("no worksheet in the workbook")
    return sheets


def _xlsx_row(row: ElementTree.Element, strings: list[str]) -> list[str]:
    cells: dict[int, str] = {}
    position = 0
    for cell in row:
        if _local(cell.tag) != "c":
            continue
        position = _column_index(cell.get("r"), position)
        if position >= MAX_COLUMNS:
            raise SpreadsheetError(f"more than {MAX_COLUMNS} columns")
        cells[position] = _xlsx_cell(cell, strings)
        position += 1
    if not cells:
        return []
    out = [""] * (max(cells) + 1)
    for index, value in cells.items():
        out[index] = value
    return out


# --------------------------------------------------------------------- ods
def _ods_text(cell: ElementTree.Element) -> str:
    """The text of an ODS cell: paragraphs joined by newlines, spaces and tabs expanded."""
    paragraphs: list[str] = []
    for child in cell:
        if _local(child.tag) in ("p", "h"):
            parts: list[str] = []
            _ods_inline(child, parts)
            paragraphs.append("".join(parts))
    return "\n".join(paragraphs)


def _ods_inline(elem: ElementTree.Element, parts: list[str]) -> None:
    if elem.text:
        parts.append(elem.text)
    for child in elem:
        name = _local(child.tag)
        if name == "s":
            parts.append(" " * min(_int(_attr(child, "c"), 1), 1000))
        elif name == "tab":
            parts.append("\t")
        elif name == "line-break":
            parts.append("\n")
        elif name not in ("annotation", "note"):
            _ods_inline(child, parts)
        if child.tail:
            parts.append(child.tail)


def _int(value: str | None, default: int) -> int:
    try:
        return max(int(value), 1) if value is not None else default
    except ValueError:
        return default


def _ods_cell(cell: ElementTree.Element) -> str:
    kind = _attr(cell, "value-type")
    if kind in ("float", "percentage", "currency"):
        value = _attr(cell, "value")
        if value is not None:
            return _number(value)
    if kind == "boolean":
        value = _attr(cell, "boolean-value")
        if value is not None:
            return "1" if value == "true" else "0"
    return _ods_text(cell)


def _ods_row(row: ElementTree.Element, budget: _Budget) -> list[str]:
    out: list[str] = []
    pending_blanks = 0
    for cell in row:
        if _local(cell.tag) not in ("table-cell", "covered-table-cell"):
            continue
        repeat = _int(_attr(cell, "number-columns-repeated"), 1)
        value = _ods_cell(cell)
        if not value.strip():
            pending_blanks += repeat  # only materialised if a value follows
            continue
        if len(out) + pending_blanks + repeat > MAX_COLUMNS:
            raise SpreadsheetError(f"more than {MAX_COLUMNS} columns")
        budget.count(pending_blanks + repeat)
        out.extend([""] * pending_blanks)
        out.extend([value] * repeat)
        pending_blanks = 0
    return out


def _read_ods(budget: _Budget) -> list[Sheet]:
    data = budget.member("content.xml")
    if data is None:
        raise SpreadsheetError("no content.xml in the archive")
    sheets: list[Sheet] = []
    current: Sheet | None = None
    for event, elem in _events(data):
        name = _local(elem.tag)
        if event == "start" and name == "table":
            current = Sheet(_attr(elem, "name") or f"sheet{len(sheets) + 1}", [])
        elif event == "end" and name == "table-row" and current is not None:
            repeat = _int(_attr(elem, "number-rows-repeated"), 1)
            _add_row(current.records, _ods_row(elem, budget), repeat, budget)
            elem.clear()
        elif event == "end" and name == "table" and current is not None:
            sheets.append(current)
            current = None
            elem.clear()
    if not sheets:
        raise SpreadsheetError("no table in the document")
    return sheets
