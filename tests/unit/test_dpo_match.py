"""Who a rights request is about (isoloir.dpo.match), the CSV rewrite of an erasure
(isoloir.dpo.erase.without_rows) and the request deadlines (isoloir.dpo.requests).
Fake people only; failures print counts, never a value."""

from __future__ import annotations

import codecs
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from isoloir.dpo import requests
from isoloir.dpo.erase import without_rows
from isoloir.dpo.match import Query, QueryError, match_table
from isoloir.retention import tabular

HEADER = ["Prénom", "NOM", "Courriel perso", "Tél.", "Adresse", "Commune"]
ROWS = [
    {
        "Prénom": "Alix",
        "NOM": "Fictif",
        "Courriel perso": "ALIX.F@electeurs.example",
        "Tél.": "06 39 98 00 01",
        "Adresse": "1 rue de l'Exemple",
        "Commune": "Exempleville",
    },
    {
        "Prénom": "Alix",
        "NOM": "Fictif",
        "Courriel perso": "",
        "Tél.": "",
        "Adresse": "9 rue Haute, 99100 Fictive-sur-Loire",
        "Commune": "",
    },
    {
        "Prénom": "Basile",
        "NOM": "Essai",
        "Courriel perso": "b@electeurs.example",
        "Tél.": "+33 6 39 98 00 01",
        "Adresse": "",
        "Commune": "Exempleville",
    },
    {
        "Prénom": "Fictif",
        "NOM": "Alix",
        "Courriel perso": "",
        "Tél.": "",
        "Adresse": "",
        "Commune": "EXEMPLE-VILLE",
    },
]


def rows_for(query: Query) -> list[int]:
    return [m.row for m in match_table(query, HEADER, ROWS)]


def test_an_email_in_any_column_whatever_its_case() -> None:
    assert rows_for(Query.build(emails=["alix.f@ELECTEURS.example"])) == [1]


def test_a_phone_in_any_notation() -> None:
    # the same number, national and international: both rows hold it
    assert rows_for(Query.build(phones=["0639980001"])) == [1, 3]


def test_a_name_needs_its_commune_either_order_and_address() -> None:
    assert rows_for(Query.build(name="alix fictif", commune="Exempleville")) == [1, 4]
    # the homonym of another commune, found through the end of the address
    assert rows_for(Query.build(name="Alix Fictif", commune="Fictive sur Loire")) == [2]
    assert rows_for(Query.build(name="Alix Fictif", commune="Maquetteville")) == []


def test_a_match_says_why_and_carries_the_rows_identifiers() -> None:
    (found,) = match_table(Query.build(name="Basile Essai", commune="exempleville"), HEADER, ROWS)
    assert found.matched_by == ("name",)
    assert found.emails == ("b@electeurs.example",)
    assert found.phones == (tabular.normalise_phone("06 39 98 00 01"),)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"emails": ["not-an-address"]}, "e-mail #1"),
        ({"phones": ["12"]}, "phone #1"),
        ({"name": "Alix Fictif"}, "--commune"),
        ({}, "at least"),
    ],
)
def test_unusable_identifiers_are_refused_without_echoing_them(kwargs, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(QueryError) as err:
        Query.build(**kwargs)
    assert words in str(err.value) and "not-an-address" not in str(err.value)


@pytest.mark.parametrize(
    ("encoding", "bom", "newline", "delimiter"),
    [
        ("utf-8", b"", "\r\n", ";"),
        ("utf-8", codecs.BOM_UTF8, "\n", ","),
        ("cp1252", b"", "\r\n", "\t"),
    ],
)
def test_the_rewrite_keeps_the_file_as_its_spreadsheet_wrote_it(
    encoding: str, bom: bytes, newline: str, delimiter: str
) -> None:
    lines = [
        delimiter.join(["prénom", "nom", "email", "commune"]),
        delimiter.join(["Léonie", "Ébauche", "leonie@electeurs.example", "Exempleville"]),
        delimiter.join(["Désiré", "Modèle", "desire@electeurs.example", "Exempleville"]),
    ]
    data = bom + newline.join([*lines, ""]).encode(encoding)
    cleaned, removed = without_rows(Query.build(emails=["desire@electeurs.example"]), data)
    assert removed == 1
    assert cleaned == bom + newline.join([*lines[:2], ""]).encode(encoding)
    assert tabular.decode_info(cleaned).encoding == tabular.decode_info(data).encoding
    # nobody there: the bytes are left as they are
    assert without_rows(Query.build(emails=["x@electeurs.example"]), data) == (data, 0)


def test_one_month_then_the_extension(tmp_path: Path) -> None:
    assert requests.add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert requests.add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert requests.add_months(date(2027, 11, 15), 3) == date(2028, 2, 15)
    log = requests.RequestLog(tmp_path)
    now = datetime(2027, 4, 10, tzinfo=UTC)
    r = log.open("erasure", date(2027, 4, 1), now)
    assert (r.due, oct(log.path.stat().st_mode & 0o777)) == ("2027-05-01", "0o600")
    r = log.update(r.id, now, extend=True, reason="nombre de demandes")
    assert (r.due, r.extended) == ("2027-07-01", True)
    with pytest.raises(requests.RequestError, match="already extended"):
        log.update(r.id, now, extend=True)
    with pytest.raises(requests.RequestError, match="future"):
        log.open("access", date(2027, 4, 11), now)
    with pytest.raises(requests.RequestError, match="unknown right"):
        log.open("delete-me", date(2027, 4, 1), now)


def test_a_file_the_agents_cannot_write_is_left_and_counted(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The erasure goes on past a file it may not rewrite, names it, and is incomplete."""
    from isoloir.dpo import erase as erase_mod
    from isoloir.dpo import search
    from isoloir.dpo.match import RowMatch
    from isoloir.policy import load_policies
    from isoloir.retention import keys

    policies = load_policies(Path(__file__).resolve().parents[2] / "policies")
    keys.init(tmp_path / "secrets")
    place = search.Place(
        "contacts",
        str(tmp_path / "kept.csv"),
        None,
        None,
        [RowMatch(1, ("email",), {}, ("a@electeurs.example",), ())],
    )
    still = search.Result(places=[place])
    monkeypatch.setattr(search, "find", lambda *a, **k: still)

    def refuse(path: Path, query: Query) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(erase_mod, "rewrite_path", refuse)
    done = erase_mod.erase(
        Query.build(emails=["a@electeurs.example"]),
        policies,
        request_id="DR-20270401-abcdef",
        state_dir=tmp_path / "state",
        secrets_dir=tmp_path / "secrets",
        now=lambda: datetime(2027, 4, 2, tzinfo=UTC),
        s3_for=lambda region: None,
    )
    assert done.left_for_dpo == [str(tmp_path / "kept.csv")]
    assert not done.complete and done.rows_left == 1
    (action,) = done.record["certificate"]["actions"]
    assert action["action"].startswith("left: not writable")
