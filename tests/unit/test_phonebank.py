"""Issue 23, item 8: phone banking.

Calling hours are validated in the baseline; `isoloir calllist export` drops
the people on the suppression list (by e-mail, phone, or name and address),
the rows without a number, and everyone outside the calling hours in their
own local time: metropolitan France or the overseas department of their
commune, public holidays of their place included."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tests.unit.test_policy_validate import edit, policies, run_validate  # noqa: F401

from isoloir.cli import main
from isoloir.phonebank import calllist
from isoloir.policy import load_policies
from isoloir.policy.model import PhoneBanking
from isoloir.retention import keys, tabular
from isoloir.retention.suppression import SuppressionList, db_path

PARIS = ZoneInfo("Europe/Paris")
RULES = PhoneBanking()  # weekdays 10-13 h and 14-20 h, no public holiday
NOW = datetime(2027, 3, 1, tzinfo=UTC)

HEADER = "prenom;nom;telephone;email;adresse;code postal;commune\r\n"
ROWS = {
    "paris": "Alix;Fictif;06 39 98 00 01;;3 rue des Essais;75011;Paris",
    "martinique": "Basile;Modèle;0696 39 98 02;;1 rue X;97200;Fort-de-France",
    "reunion": "Capucine;Essai;0692 39 98 03;;2 rue Y;97400;Saint-Denis",
    "guyane": "Désiré;Test;0694 39 98 04;;3 rue Z;97300;Cayenne",
    "opted_phone": "Eulalie;Brouillon;06 39 98 00 05;;4 rue A;75011;Paris",
    "opted_postal": "Firmin;Ébauche;06 39 98 00 06;;12 av. de l'Exemple;99000;Exempleville",
    "no_phone": "Gaëlle;Esquisse;;g@electeurs.example;5 rue B;75011;Paris",
    "unknown_code": "Hector;Canevas;06 39 98 00 08;;6 rue C;97999;Nulle-part",
    "reunion_by_number": "Iris;Maquette;+262 692 39 98 09;;7 rue D;;",
    "formula": '=HYPERLINK("x");Prototype;06 39 98 00 10;;8 rue E;75011;Paris',
}


def table(*names: str) -> bytes:
    return (HEADER + "".join(ROWS[n] + "\r\n" for n in names)).encode("utf-8")


@pytest.fixture()
def store(tmp_path: Path) -> SuppressionList:
    keys.init(tmp_path / "secrets")
    s = SuppressionList(db_path(tmp_path / "state"), keys.hmac_key(tmp_path / "secrets"))
    postal = tabular.postal_identity(["Firmin Ébauche"], ["12 avenue de l'Exemple Exempleville"])
    assert postal is not None
    phone = tabular.normalise_phone("06 39 98 00 05")  # the fiction block, in Mayotte's range
    assert phone is not None
    s.add([], [phone], postals=[postal], election="e", run_id="r", now=NOW)
    return s


@pytest.mark.parametrize(
    ("code", "zone"),
    [
        ("75011", "Europe/Paris"),
        ("1000", "Europe/Paris"),  # 01000, its 0 dropped by a spreadsheet
        ("2A004", "Europe/Paris"),  # an INSEE code in Corsica
        ("97200", "America/Martinique"),
        ("97133", "America/St_Barthelemy"),
        ("97150", "America/Marigot"),
        ("97110", "America/Guadeloupe"),
        ("97300", "America/Cayenne"),
        ("97400", "Indian/Reunion"),
        ("97600", "Indian/Mayotte"),
        ("98800", "Pacific/Noumea"),
        ("97999", None),
        ("Paris", None),
    ],
)
def test_the_commune_gives_the_time_zone(code: str, zone: str | None) -> None:
    assert calllist.zone_of_code(code) == zone


def test_the_number_gives_it_when_the_commune_is_unknown() -> None:
    assert calllist.zone_of_phone("+262639123456") == "Indian/Mayotte"
    assert calllist.zone_of_phone("+262692123456") == "Indian/Reunion"
    assert calllist.zone_of_phone("+33639980001") == "Europe/Paris"
    assert calllist.zone_of_phone("+447700900123") is None


def test_a_tuesday_evening_session_in_paris(store: SuppressionList) -> None:
    # 18:30-19:30 in Paris (CET): 13:30 in Martinique (lunch gap), 21:30 in Réunion
    start = datetime(2027, 3, 9, 18, 30, tzinfo=PARIS)
    end = datetime(2027, 3, 9, 19, 30, tzinfo=PARIS)
    data, result = calllist.export(table(*ROWS), store, RULES, start, end)
    assert (result.rows, result.kept) == (10, 3)
    assert (result.opted_out, result.no_phone, result.unknown_zone) == (2, 1, 1)
    assert result.out_of_window == 3  # Martinique, Réunion by its code and by its number
    assert result.zones == {"Europe/Paris": 2, "America/Cayenne": 1}
    header, rows = tabular.read_table(data)
    assert header == HEADER.strip().split(";")
    assert [r["nom"] for r in rows] == ["Fictif", "Test", "Prototype"]
    assert rows[2]["prenom"].startswith("'=")  # a formula is neutralised


def test_public_holidays_where_the_person_lives(store: SuppressionList) -> None:
    # 27 May 2027, 20:00-21:00 in Paris: 14:00 in the Antilles, abolition day in Guadeloupe
    guadeloupe = "Jules;Fictif;0690 39 98 11;;1 rue F;97110;Pointe-à-Pitre"
    martinique = ROWS["martinique"]
    data = (HEADER + guadeloupe + "\r\n" + martinique + "\r\n" + ROWS["paris"] + "\r\n").encode()
    start = datetime(2027, 5, 27, 20, 0, tzinfo=PARIS)
    out, result = calllist.export(data, store, RULES, start, start.replace(hour=21))
    assert result.zones == {"America/Martinique": 1} and result.out_of_window == 2
    allowed = PhoneBanking(RULES.windows, public_holidays=True)
    _out, result = calllist.export(data, store, allowed, start, start.replace(hour=21))
    assert result.kept == 2  # Paris is still past 20:00
    # Good Friday: a holiday in Alsace-Moselle only
    strasbourg = "Léonie;Essai;06 39 98 00 12;;1 quai G;67000;Strasbourg"
    data = (HEADER + strasbourg + "\r\n" + ROWS["paris"] + "\r\n").encode()
    friday = datetime(2027, 3, 26, 10, 0, tzinfo=PARIS)
    _out, result = calllist.export(data, store, RULES, friday, friday.replace(hour=11))
    assert result.zones == {"Europe/Paris": 1} and result.out_of_window == 1
    assert calllist._easter(2027).isoformat() == "2027-03-28"
    assert calllist._easter(2026).isoformat() == "2026-04-05"


def test_bad_sessions_and_files_are_refused_clearly(store: SuppressionList) -> None:
    start = datetime(2027, 3, 9, 18, 30, tzinfo=PARIS)
    with pytest.raises(calllist.CallListError, match="ends before it starts"):
        calllist.export(table("paris"), store, RULES, start, start)
    with pytest.raises(calllist.CallListError, match="at most 12 hours"):
        calllist.export(table("paris"), store, RULES, start, start.replace(day=10))
    with pytest.raises(calllist.CallListError, match="need a time zone"):
        calllist.export(table("paris"), store, RULES, start.replace(tzinfo=None), start)
    end = start.replace(hour=19)
    with pytest.raises(calllist.CallListError, match="no phone column found"):
        calllist.export(b"prenom;nom\r\nAlix;Fictif\r\n", store, RULES, start, end)
    with pytest.raises(ValueError, match="'cp' not in the file's header"):
        calllist.export(table("paris"), store, RULES, start, end, postcode_column="cp")
    with pytest.raises(calllist.CallListError, match="empty file"):
        calllist.export(b"", store, RULES, start, end)
    with pytest.raises(calllist.CallListError, match="is not a date and time"):
        calllist.parse_moment("mardi 18h")
    assert calllist.parse_moment("2027-03-09T18:30") == start
    assert calllist.parse_moment("2027-03-09T21:30+04:00") == start


# ---------------------------------------------------------------- the policy
def test_the_example_declares_the_calling_hours(policies) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    rules = load_policies(policies).baseline.phone_banking
    assert rules == RULES


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ('from: "14:00", to: "20:00"', 'from: "20:00", to: "14:00"', "windows[1].to", "not after"),
        ('from: "14:00", to: "20:00"', 'from: "12:00", to: "20:00"', "windows[1].from", "overlaps"),
        (
            'days: [mon, tue, wed, thu, fri], from: "14',
            'days: [lun], from: "14',
            "windows[1]",
            "mon",
        ),  # fmt: skip
        ('to: "13:00"', 'to: "13h"', "windows[0].to", "HH:MM"),
    ],
)
def test_bad_calling_hours_name_the_line_and_field(  # type: ignore[no-untyped-def]
    policies,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    field: str,
    words: str,
) -> None:
    line = edit(policies, "baseline.yml", old, new)
    code, lines = run_validate(policies, capsys)
    assert code == 2
    assert any(
        f"baseline.yml:{line}:" in x and f"phone_banking.{field}" in x and words in x for x in lines
    ), (line, lines)


# ------------------------------------------------------------------- the CLI
def test_calllist_export_command(
    policies,  # type: ignore[no-untyped-def]  # noqa: F811
    tmp_path: Path,
    store: SuppressionList,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store.close()
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.setenv("ISOLOIR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ISOLOIR_CONFIG", str(policies))
    source = tmp_path / "appels.csv"
    source.write_bytes(table(*ROWS))
    out = tmp_path / "seance.csv"
    args = ["calllist", "export", str(source), "-o", str(out), "--start", "2027-03-09T18:30"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "10 rows read, 3 to call" in printed and "2 opted out" in printed
    assert "3 outside the calling hours" in printed
    assert "06 39 98" not in printed and "Fictif" not in printed
    assert len(tabular.read_table(out.read_bytes())[1]) == 3
    assert main([*args[:-1], "mardi 18h"]) == 2
    assert "is not a date and time" in capsys.readouterr().err
    monkeypatch.setenv("ISOLOIR_STATE_DIR", str(tmp_path / "nowhere"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no suppression list" in err and "never exported unfiltered" in err
    assert os.path.exists(out)
