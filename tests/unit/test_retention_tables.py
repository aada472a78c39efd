"""Reading real campaign exports for the retention purge: headers as people
write them, French CSV encodings and delimiters, .xlsx/.ods (bounded), the
newest stored version of each object, and the refusal to delete a table whose
opt-outs or consents could not be read (unless the loss is accepted)."""

from __future__ import annotations

import codecs
import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import boto3
import pytest
from moto import mock_aws

from isoloir.policy import load_policies
from isoloir.policy.model import ColumnRule, Election, Policies, Tabular
from isoloir.retention import keys, losses, purge, spreadsheet, tabular
from isoloir.retention.journal import Journal
from isoloir.retention.journal import db_path as journal_path
from isoloir.retention.suppression import SuppressionList
from isoloir.retention.suppression import db_path as suppression_path

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-3"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
TAB = Tabular(
    consent=ColumnRule("consentement", ("oui", "yes", "1")),
    opt_out=ColumnRule("desinscrit", ("oui", "1")),
    email_column="email",
    phone_column="telephone",
)
KEEP = ("prenom", "nom", "email", "telephone", "commune")
EXCEL_HEADER = ["Prénom", "Nom", "E-mail", "Téléphone", "Commune", "Consentement", "Désinscrit"]


# ------------------------------------------------------------------ headers
@pytest.mark.parametrize(
    ("written", "declared"),
    [
        ("Désinscrit", "desinscrit"),
        ("DÉSINSCRIT ", "desinscrit"),
        ("E-mail", "email"),
        ("e_mail", "email"),
        ("Téléphone", "telephone"),
        ("Prénom", "prenom"),
        ("\ufeffPrénom", "prenom"),
        (" N° de téléphone ", "n° de telephone"),
    ],
)
def test_header_matches_as_people_write_it(written: str, declared: str) -> None:
    assert tabular.find_column(["Autre", written], declared) == written


def test_exact_header_wins_over_a_folded_one() -> None:
    assert tabular.find_column(["E-mail", "email"], "email") == "email"
    assert tabular.find_column(["Nom"], "prenom") is None
    assert tabular.find_column(["Nom"], "") is None


def test_excel_header_keeps_opt_outs_and_kept_columns() -> None:
    header = EXCEL_HEADER
    rows = [
        dict(zip(header, r, strict=True))
        for r in (
            ["Alix", "Fictif", "alix@exemple.example", "06 39 98 00 01", "X", "", "oui"],
            ["Basile", "Test", "basile@exemple.example", "06 39 98 00 02", "X", "oui", ""],
        )
    ]
    split = tabular.split_rows(header, rows, TAB, KEEP)
    assert split.opted_out == 1
    assert split.emails == {"alix@exemple.example"}
    assert split.kept == [("Basile", "Test", "basile@exemple.example", "06 39 98 00 02", "X")]
    assert tabular.missing_columns(header, TAB) == []
    assert tabular.missing_columns(["nom", "email"], TAB) == [
        "no consent column 'consentement'",
        "no opt-out column 'desinscrit'",
        "no phone column 'telephone'",
    ]


# ------------------------------------------------------------------ decoding
def _csv(rows: list[list[str]], delimiter: str, newline: str) -> str:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, lineterminator=newline).writerows(rows)
    return out.getvalue()


EXCEL_ROWS = [
    EXCEL_HEADER,
    ["Élise", "Démo", "elise@exemple.example", "01 99 00 12 34", "Exempleville", "", "oui"],
    ["Gaëlle", "Modèle", "gaelle@exemple.example", "06 39 98 12 34", "Exempleville", "oui", ""],
]


@pytest.mark.parametrize(
    ("data", "encoding", "delimiter"),
    [
        (_csv(EXCEL_ROWS, ";", "\r\n").encode("cp1252"), "cp1252", ";"),
        (codecs.BOM_UTF8 + _csv(EXCEL_ROWS, ",", "\n").encode(), "utf-8", ","),
        (_csv(EXCEL_ROWS, "\t", "\r\n").encode(), "utf-8", "\t"),
        (
            codecs.BOM_UTF16_LE + _csv(EXCEL_ROWS, "\t", "\r\n").encode("utf-16-le"),
            "utf-16-le",
            "\t",
        ),
    ],
    ids=["excel-fr-cp1252", "utf8-bom", "tab", "excel-unicode-text"],
)
def test_french_exports_are_read(data: bytes, encoding: str, delimiter: str) -> None:
    parsed = tabular.parse(data)
    assert parsed.decoded is not None and parsed.decoded.encoding == encoding
    assert parsed.delimiter == delimiter
    assert parsed.header == EXCEL_HEADER
    assert [r["Prénom"] for r in parsed.rows] == ["Élise", "Gaëlle"]


def test_long_quoted_field_with_newlines_is_read() -> None:
    notes = "Visite du 12 mars ;\r\nrappeler, peut-être.\n" + "x" * 200_000
    text = _csv(
        [
            ["prenom", "email", "notes", "desinscrit"],
            ["Hugo", "hugo@exemple.example", notes, "oui"],
        ],
        ",",
        "\r\n",
    )
    header, rows = tabular.read_table(text.encode())
    assert header == ["prenom", "email", "notes", "desinscrit"]
    assert rows[0]["notes"] == notes and rows[0]["desinscrit"] == "oui"


def test_semicolon_header_with_commas_in_values() -> None:
    text = "nom;adresse;email\r\nA;1, rue de la Paix, Exempleville;a@exemple.example\r\n"
    header, rows = tabular.read_table(text.encode())
    assert header == ["nom", "adresse", "email"]
    assert rows[0]["email"] == "a@exemple.example"


# ------------------------------------------------------------- normalisation
@pytest.mark.parametrize(
    ("national", "international"),
    [
        ("0262 12 34 56", "+262 262 12 34 56"),
        ("0692 12 34 56", "+262 692 12 34 56"),
        ("0693 12 34 56", "+262 693 12 34 56"),
        ("0269 12 34 56", "+262 269 12 34 56"),
        ("06 39 98 12 34", "+262 639 98 12 34"),
        ("0590 12 34 56", "+590 590 12 34 56"),
        ("0690 12 34 56", "+590 690 12 34 56"),
        ("0691 12 34 56", "+590 691 12 34 56"),
        ("0596 12 34 56", "+596 596 12 34 56"),
        ("0696 12 34 56", "+596 696 12 34 56"),
        ("0697 12 34 56", "+596 697 12 34 56"),
        ("0594 12 34 56", "+594 594 12 34 56"),
        ("0694 12 34 56", "+594 694 12 34 56"),
    ],
)
def test_overseas_numbers_match_across_notations(national: str, international: str) -> None:
    expected = tabular.normalise_phone(international)
    assert expected is not None and not expected.startswith("+33")
    assert tabular.normalise_phone(national) == expected
    assert tabular.normalise_phone("+33 " + national[1:]) == expected
    assert tabular.normalise_phone("00" + international[1:]) == expected


def test_phone_extension_and_named_email() -> None:
    assert tabular.normalise_phone("+33 6 12 34 56 78 poste 12") == "+33612345678"
    assert tabular.normalise_phone("01 99 00 12 34") == "+33199001234"
    assert tabular.normalise_email("Bob Exemple <Bob@Exemple.example>") == "bob@exemple.example"
    assert tabular.normalise_email('"bob@exemple.example"') == "bob@exemple.example"
    assert tabular.normalise_email("bob@@exemple.example") is None


def test_opt_outs_without_identifier_are_counted() -> None:
    header = ["email", "telephone", "desinscrit"]
    rows = [
        {"email": "n/a", "telephone": "inconnu", "desinscrit": "oui"},
        {"email": "a@exemple.example", "telephone": "", "desinscrit": "oui"},
    ]
    split = tabular.split_rows(header, rows, TAB, KEEP)
    assert (split.opted_out, split.opted_out_without_identifier) == (2, 1)


# -------------------------------------------------------------- spreadsheets
def _col(i: int) -> str:
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(65 + r) + name
    return name


def make_xlsx(rows: list[list[str]], *, numbers: bool = True) -> bytes:
    """A minimal valid .xlsx: header in shared strings, text inline, phone digits as numbers."""
    shared = rows[0]
    sheet_rows = []
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, value in enumerate(row):
            ref = f"{_col(c)}{r}"
            if r == 1:
                cells.append(f'<c r="{ref}" t="s"><v>{c}</v></c>')
            elif numbers and value.isdigit():
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            elif value:
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>')
        sheet_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.'
            'org/package/2006/content-types"><Default Extension="xml" ContentType="application/'
            'xml"/></Types>'
        ),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}">'
            '<sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="'
            f'{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/sharedStrings.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{main}">'
            + "".join(f"<si><t>{escape(s)}</t></si>" for s in shared)
            + "</sst>"
        ),
        "xl/worksheets/sheet1.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{main}"><sheetData>'
            + "".join(sheet_rows)
            + "</sheetData></worksheet>"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(name, text)
    return out.getvalue()


ODS_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
)


def make_ods(rows: list[list[str]], extra_rows: str = "") -> bytes:
    """A minimal valid .ods, with the full-width blank cells and rows LibreOffice writes."""
    body = []
    for row in rows:
        cells = "".join(
            f'<table:table-cell office:value-type="string"><text:p>{escape(v)}</text:p>'
            "</table:table-cell>"
            if v
            else "<table:table-cell/>"
            for v in row
        )
        body.append(
            f'<table:table-row>{cells}<table:table-cell table:number-columns-repeated="16370"/>'
            "</table:table-row>"
        )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODS_NS}>'
        '<office:body><office:spreadsheet><table:table table:name="Feuille1">'
        + "".join(body)
        + extra_rows
        + '<table:table-row table:number-rows-repeated="1048000"><table:table-cell '
        'table:number-columns-repeated="16384"/></table:table-row>'
        "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:'
            'oasis:names:tc:opendocument:xmlns:manifest:1.0"/>',
        )
    return out.getvalue()


SHEET = [
    ["prenom", "nom", "email", "telephone", "commune", "consentement", "desinscrit"],
    ["Alix", "Fictif", "alix@exemple.example", "639981201", "Exempleville", "", "oui"],
    ["Basile", "Test", "basile@exemple.example", "0639981202", "Exempleville", "oui", ""],
]


def test_xlsx_is_read() -> None:
    (sheet,) = spreadsheet.read(make_xlsx(SHEET), "liste.xlsx")
    header, rows = tabular.from_records(sheet.records)
    assert sheet.name == "Contacts" and header == SHEET[0]
    assert rows[0]["telephone"] == "639981201"  # a number cell, not 639981201.0
    assert rows[1]["desinscrit"] == "" and rows[1]["consentement"] == "oui"


def test_ods_is_read_without_expanding_blank_repeats() -> None:
    (sheet,) = spreadsheet.read(make_ods(SHEET), "liste.ods")
    assert sheet.name == "Feuille1"
    assert sheet.records == [SHEET[0], SHEET[1], SHEET[2][:-1]]  # trailing blanks trimmed
    header, rows = tabular.from_records(sheet.records)
    assert rows[1]["desinscrit"] == "" and rows[0]["desinscrit"] == "oui"


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_spreadsheet_limits() -> None:
    bomb = _zip({"content.xml": b"<a>" + b" " * (64 * 1024 * 1024) + b"</a>"})
    with pytest.raises(spreadsheet.SpreadsheetError, match="compressed more than"):
        spreadsheet.read(bomb, "bombe.ods")
    doctype = _zip(
        {
            "content.xml": b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>',
        }
    )
    with pytest.raises(spreadsheet.SpreadsheetError, match="DOCTYPE"):
        spreadsheet.read(doctype, "entites.ods")
    with pytest.raises(spreadsheet.SpreadsheetError, match="archive"):
        spreadsheet.read(b"PK\x03\x04 garbage", "casse.xlsx")
    many = make_ods(
        SHEET[:1],
        extra_rows=(
            '<table:table-row table:number-rows-repeated="2000000"><table:table-cell '
            'office:value-type="string"><text:p>x</text:p></table:table-cell></table:table-row>'
        ),
    )
    with pytest.raises(spreadsheet.SpreadsheetError, match="rows"):
        spreadsheet.read(many, "lignes.ods")


def test_spreadsheet_member_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spreadsheet, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(spreadsheet.SpreadsheetError, match="larger than"):
        spreadsheet.read(make_xlsx(SHEET * 20), "gros.xlsx")


# ---------------------------------------------------------- dataset reading
def make_policies(root: Path) -> Policies:
    """The example baseline and one election; the share and the contacts store under `root`
    (the loader refuses /tmp as a share root, so the paths are set after loading)."""
    (root / "policies").mkdir(parents=True)
    text = (REPO / "policies" / "baseline.yml").read_text(encoding="utf-8")
    (root / "policies" / "elections").mkdir(parents=True)
    (root / "policies" / "baseline.yml").write_text(text, encoding="utf-8")
    election = "\n".join(
        [
            "id: ville-2026",
            "label: Élection fictive",
            "kind: municipales",
            "rounds: [2026-03-15, 2026-03-22]",
            "retention:",
            "  date: 2026-05-22",
            "legal_hold:",
            "  active: false",
            '  reason: ""',
            "members: [cfictive]",
            "bucket: mouvement-exemple-rt-tables-ville-2026",
            "datasets:",
            "  - name: prospects",
            "    bucket_prefix: prospects/",
            "    share_path: prospects",
            "    origin: opt_in_form",
            "    legal_basis: legitimate_interest",
            "    category: campaign",
            "    tabular:",
            "      consent: {column: consentement, accepted: [oui, 'yes', '1']}",
            "      opt_out: {column: desinscrit, accepted: [oui, 'yes', '1']}",
            "      email_column: email",
            "      phone_column: telephone",
        ]
    )
    (root / "policies" / "elections" / "ville-2026.yml").write_text(election + "\n", "utf-8")
    for d in ("contacts", "shares/ville-2026/prospects"):
        (root / d).mkdir(parents=True, exist_ok=True)
    loaded = load_policies(root / "policies")
    base = loaded.baseline
    retention = replace(base.retention, contacts_path=str(root / "contacts"))
    elections = tuple(replace(e, share_path=str(root / "shares" / e.id)) for e in loaded.elections)
    return replace(loaded, baseline=replace(base, retention=retention), elections=elections)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket="mouvement-exemple-rt-tables-ville-2026",
            CreateBucketConfiguration={"LocationConstraint": REGION},
        )
        client.put_bucket_versioning(
            Bucket="mouvement-exemple-rt-tables-ville-2026",
            VersioningConfiguration={"Status": "Enabled"},
        )
        yield client


def test_extraction_reads_behind_a_delete_marker(tmp_path: Path, s3: Any) -> None:
    policies = make_policies(tmp_path)
    e = policies.election("ville-2026")
    ds = e.dataset("prospects")
    old = _csv(SHEET[:2], ",", "\r\n").encode()
    new = _csv(SHEET, ",", "\r\n").encode()
    s3.put_object(Bucket=e.bucket_name, Key="prospects/liste.csv", Body=old)
    s3.put_object(Bucket=e.bucket_name, Key="prospects/liste.csv", Body=new)
    s3.delete_object(Bucket=e.bucket_name, Key="prospects/liste.csv")  # lifecycle expiry
    extraction = purge.read_dataset(s3, e, ds)
    assert extraction.problems == []
    table, older = extraction.tables
    assert table.source == f"s3://{e.bucket_name}/prospects/liste.csv"
    assert [r["prenom"] for r in table.rows] == ["Alix", "Basile"]  # the newest version
    assert not table.opt_outs_only
    # the older version is read too, for its opt-outs only (CLI review N4)
    assert older.opt_outs_only and "(older version " in older.source


def _problems(extraction: purge.Extraction) -> dict[str, str]:
    return {p.source: p.reason for p in extraction.problems}


def test_unreadable_or_incomplete_tables_are_refused_then_accepted(tmp_path: Path, s3: Any) -> None:
    policies = make_policies(tmp_path)
    e = policies.election("ville-2026")
    ds = e.dataset("prospects")
    share = tmp_path / "shares" / "ville-2026" / "prospects"
    (share / "sans-desinscrit.csv").write_bytes(
        b"prenom;email;telephone;consentement\r\nA;a@x.example;;oui\r\n"
    )
    (share / "vide.csv").write_bytes(b"prenom;email\r\n")  # no rows: nothing to lose
    (share / "binaire.csv").write_bytes(b"\x00\x01\x02" * 10)
    (share / "ancien.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    s3.put_object(Bucket=e.bucket_name, Key="prospects/casse.xlsx", Body=b"PK\x03\x04 garbage")
    extraction = purge.read_dataset(s3, e, ds)
    problems = _problems(extraction)
    assert set(problems) == {
        "share:prospects/sans-desinscrit.csv",
        "share:prospects/binaire.csv",
        "share:prospects/ancien.xls",
        f"s3://{e.bucket_name}/prospects/casse.xlsx",
    }
    assert problems["share:prospects/sans-desinscrit.csv"] == "no opt-out column 'desinscrit'"
    with pytest.raises(purge.PurgeError) as refused:
        purge.refuse_unaccepted(tmp_path / "state", e, ds, extraction.problems)
    message = str(refused.value)
    assert "4 table(s) of dataset prospects" in message and "binaire.csv" in message
    assert "nothing of the dataset was deleted" in message
    # the administrator accepts two losses: the other two still stop the purge
    chosen = [p for p in extraction.problems if p.source.endswith(("binaire.csv", ".xls"))]
    losses.accept(tmp_path / "state", e.id, ds.name, chosen, now=NOW, by="admin")
    with pytest.raises(purge.PurgeError, match="2 table"):
        purge.refuse_unaccepted(tmp_path / "state", e, ds, extraction.problems)
    losses.accept(tmp_path / "state", e.id, ds.name, extraction.problems, now=NOW, by="admin")
    accepted = purge.refuse_unaccepted(tmp_path / "state", e, ds, extraction.problems)
    assert sorted(a["source"] for a in accepted) == sorted(problems)
    assert oct(losses.path(tmp_path / "state").stat().st_mode & 0o777) == "0o600"


# ------------------------------------------ campaign exports, end to end
def person(i: int, *, consent: str = "", opt_out: str = "") -> dict[str, str]:
    return {
        "prenom": ["Élise", "Gaëlle", "Hugo", "Noé", "Zoé"][i % 5],
        "nom": "Démo",
        "email": f"personne-{i}@exemple.example",
        "telephone": f"06 39 98 {i // 100:02d} {i % 100:02d}",
        "commune": "Exempleville",
        "consentement": consent,
        "desinscrit": opt_out,
    }


def people(start: int) -> list[dict[str, str]]:
    """An opt-out, a consent, one who consents then unsubscribes, one who did neither."""
    return [
        person(start, opt_out="oui"),
        person(start + 1, consent="oui"),
        person(start + 2, consent="Oui", opt_out="OUI"),
        person(start + 3),
    ]


COLS = ["prenom", "nom", "email", "telephone", "commune", "consentement", "desinscrit"]


def rows_of(group: list[dict[str, str]], header: list[str]) -> list[list[str]]:
    return [header] + [[p[c] for c in COLS] for p in group]


def excel_fr(group: list[dict[str, str]]) -> bytes:
    return _csv(rows_of(group, EXCEL_HEADER), ";", "\r\n").encode("cp1252")


def google_sheets(group: list[dict[str, str]]) -> bytes:
    return _csv(rows_of(group, COLS), ",", "\n").encode()


def crm(group: list[dict[str, str]]) -> bytes:
    header = ["PRENOM", "NOM", "EMAIL", "TELEPHONE", "COMMUNE", "CONSENTEMENT", "DESINSCRIT"]
    rows = rows_of(group, header)
    rows[0].append("Notes")
    note = "Compte rendu de visite :\nporte 3, rappeler ;\r\n" + "n" * 200_000
    for r in rows[1:]:
        r.append(note)
    return codecs.BOM_UTF8 + _csv(rows, ",", "\r\n").encode()


def open_purger(policies: Policies, e: Election, tmp_path: Path, s3: Any) -> purge.Purger:
    keys.init(tmp_path / "secrets")
    p = purge.Purger(
        policies,
        e,
        state_dir=tmp_path / "state",
        secrets_dir=tmp_path / "secrets",
        s3=s3,
        kms=object(),
        now=lambda: NOW,
    )
    p.journal = Journal(journal_path(p.state_dir))
    p.suppression = SuppressionList(suppression_path(p.state_dir), keys.hmac_key(p.secrets_dir))
    p.run_id = p.journal.start_run(e.id, NOW).run_id
    p.started_at = NOW.isoformat()
    return p


def test_campaign_exports_as_they_come(tmp_path: Path, s3: Any) -> None:
    """Excel (French locale), Google Sheets, a CRM, .xlsx and .ods, in the share and the
    bucket: every opt-out is suppressed and every consent kept, or the file stays in place
    with the reason reported; an accepted loss is recorded for the certificate."""
    policies = make_policies(tmp_path)
    e = policies.election("ville-2026")
    ds = e.dataset("prospects")
    share = tmp_path / "shares" / "ville-2026" / "prospects"
    groups = {name: people(10 * i) for i, name in enumerate(["excel", "gs", "crm", "xlsx", "ods"])}
    (share / "export-excel.csv").write_bytes(excel_fr(groups["excel"]))
    (share / "contacts.xlsx").write_bytes(
        make_xlsx([[c.capitalize() for c in COLS]] + rows_of(groups["xlsx"], COLS)[1:])
    )
    s3.put_object(
        Bucket=e.bucket_name, Key="prospects/sheets.csv", Body=google_sheets(groups["gs"])
    )
    s3.delete_object(Bucket=e.bucket_name, Key="prospects/sheets.csv")  # an early expiry
    s3.put_object(Bucket=e.bucket_name, Key="prospects/crm/export.csv", Body=crm(groups["crm"]))
    s3.put_object(
        Bucket=e.bucket_name,
        Key="prospects/terrain.ods",
        Body=make_ods(rows_of(groups["ods"], COLS)),
    )
    # one export lost its opt-out column: the file stops the purge until fixed or accepted
    broken = people(90)
    bad_header = ["prenom", "nom", "email", "telephone", "commune", "consentement", "statut"]
    (share / "sans-colonne.csv").write_bytes(
        _csv(rows_of(broken, bad_header), ";", "\r\n").encode()
    )

    p = open_purger(policies, e, tmp_path, s3)
    assert p.journal is not None and p.suppression is not None
    before = sorted(x.name for x in share.iterdir())
    with pytest.raises(purge.PurgeError, match="sans-colonne.csv: no opt-out column"):
        p._step("extract", ds.name, {})
    assert sorted(x.name for x in share.iterdir()) == before  # nothing deleted
    assert p.suppression.count() == 0
    surveyed = purge.survey(policies, e, s3, state_dir=p.state_dir)
    (prospects,) = [s for s in surveyed if s.name == "prospects"]
    assert prospects.cannot_extract == [
        {
            "source": "share:prospects/sans-colonne.csv",
            "reason": "no opt-out column 'desinscrit'",
            "accepted": False,
        }
    ]

    # the administrator accepts that file's loss: the extraction goes through
    losses.accept(
        p.state_dir,
        e.id,
        ds.name,
        [losses.TableProblem("share:prospects/sans-colonne.csv", "no opt-out column 'desinscrit'")],
        now=NOW,
        by="admin",
    )
    for step in p.journal.steps(p.run_id, status="planned"):
        result = p._execute(step.kind, step.dataset, step.payload)
        p.journal.done(step.seq, result)
    assert result["tables_read"] == 6 and result["tables_unreadable"] == 1
    assert [a["source"] for a in result["accepted_losses"]] == ["share:prospects/sans-colonne.csv"]
    counts = p._dataset_counts(ds)
    assert counts["accepted_losses"][0]["source"] == "share:prospects/sans-colonne.csv"

    everyone = [x for g in groups.values() for x in g]
    opted = [x for x in everyone if x["desinscrit"].lower() == "oui"]
    consenting = [x for x in everyone if x["consentement"].lower() == "oui" and not x["desinscrit"]]
    assert len(opted) == 10 and len(consenting) == 5
    for x in opted:
        assert p.suppression.contains(x["email"], None), x["email"]
        assert p.suppression.contains(None, x["telephone"]), x["telephone"]
    header, kept = tabular.read_table(Path(result["contacts_file"]).read_bytes())
    assert header == list(KEEP)
    got = sorted((r["prenom"], r["email"], tabular.normalise_phone(r["telephone"])) for r in kept)
    # nobody from the accepted file: without its opt-out column, a consent cannot be trusted
    assert got == sorted(
        (x["prenom"], x["email"], tabular.normalise_phone(x["telephone"])) for x in consenting
    )
    assert result["opt_outs"] == len(opted)
    text = json.dumps(result)
    assert "@" not in text.replace(str(tmp_path), "")
    p.suppression.close()
    p.journal.close()


def test_plan_lists_each_file_the_run_would_refuse(
    tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from isoloir.cli import main
    from isoloir.retention import cli as retention_cli

    policies = make_policies(tmp_path)
    monkeypatch.setattr(retention_cli, "_policies", lambda _args: policies)
    monkeypatch.delenv("ISOLOIR_AWS_ENDPOINT", raising=False)
    share = tmp_path / "shares" / "ville-2026" / "prospects"
    header = "prenom;email;telephone;consentement;desinscrit\r\n"
    (share / "ok.csv").write_bytes((header + "A;;;;oui\r\n").encode())  # no usable identifier
    (share / "notes.csv").write_bytes(
        b"prenom;email;telephone;consentement\r\nA;a@exemple.example;;oui\r\n"
    )
    state = str(tmp_path / "state")
    # the run would refuse the dataset: plan exits 1 as the run will (CLI review N11)
    assert main(["retention", "plan", "--state-dir", state]) == 1
    out = capsys.readouterr().out
    assert "1 opt-out row(s) without a usable email or phone" in out
    assert "1 table(s) cannot be extracted" in out
    assert "the run refuses this dataset until it is fixed or accepted" in out
    assert "share:prospects/notes.csv: no opt-out column 'desinscrit'" in out
    assert "isoloir retention accept-loss --election ville-2026 --dataset prospects" in out
    assert "a@exemple.example" not in out

    args = ["retention", "accept-loss", "--state-dir", state, "--election", "ville-2026"]
    assert main([*args, "--dataset", "prospects", "share:prospects/autre.csv"]) == 2
    assert "is not a table of ville-2026/prospects" in capsys.readouterr().err
    # SOURCE and --all together: which one was meant?
    assert main([*args, "--dataset", "prospects", "--all", "share:prospects/notes.csv"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*args, "--dataset", "prospects", "share:prospects/notes.csv"]) == 0
    out = capsys.readouterr().out
    assert "accepted the loss of share:prospects/notes.csv" in out
    assert "1 table(s) accepted now, 1 in all" in out
    # accepting it again is said so, and keeps the first acceptance
    first = json.loads((tmp_path / "state" / "retention" / "accepted-losses.json").read_text())
    monkeypatch.setenv("SUDO_USER", "autre-admin")
    assert main([*args, "--dataset", "prospects", "--all"]) == 0
    out = capsys.readouterr().out
    assert "0 table(s) accepted now (1 accepted already), 1 in all" in out
    again = json.loads((tmp_path / "state" / "retention" / "accepted-losses.json").read_text())
    assert again == first
    assert main(["retention", "plan", "--state-dir", state, "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    (prospects,) = [d for d in entry["datasets"] if d["name"] == "prospects"]
    assert prospects["cannot_extract"] == [
        {
            "source": "share:prospects/notes.csv",
            "reason": "no opt-out column 'desinscrit'",
            "accepted": True,
        }
    ]


def test_corrupt_or_hostile_archives_are_unreadable_not_crashes() -> None:
    good = make_xlsx(SHEET)
    corrupt = good[:200] + bytes(b ^ 0x55 for b in good[200:400]) + good[400:]
    nested = _zip(
        {
            "content.xml": (
                f'<?xml version="1.0"?><office:document-content {ODS_NS}><office:body>'
                '<office:spreadsheet><table:table table:name="t"><table:table-row>'
                "<table:table-cell><text:p>"
                + "<text:span>" * 5000
                + "x"
                + "</text:span>" * 5000
                + "</text:p></table:table-cell></table:table-row></table:table>"
                "</office:spreadsheet></office:body></office:document-content>"
            ).encode()
        }
    )
    for data, name in ((corrupt, "corrompu.xlsx"), (nested, "imbrique.ods"), (b"", "vide.ods")):
        try:
            sheets = spreadsheet.read(data, name)
        except spreadsheet.SpreadsheetError:
            continue
        assert isinstance(sheets, list)
