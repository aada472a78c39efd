"""Issue 23, item 2: opt-outs on every channel.

A postal or door-to-door "ne plus me solliciter" has no e-mail or phone: it is
recorded by name and address (normalised, then hashed like the others), not
counted and dropped. A campaign dataset without an opt-out column cannot be
validated unless it declares that it holds none. The integration test
`test_retention.py::test_door_to_door_opt_out_without_email_or_phone_survives_the_purge`
runs the real purge."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.unit.test_policy_validate import ELECTION, edit, policies, run_validate  # noqa: F401

from isoloir.policy import load_policies, load_rendered
from isoloir.policy.model import ColumnRule, Tabular
from isoloir.policy.render import write
from isoloir.retention import keys, tabular
from isoloir.retention.suppression import SuppressionList, db_path, filter_table

DOOR = Tabular(
    consent=None,
    opt_out=ColumnRule("desinscrit", ("oui",)),
    email_column=None,
    phone_column=None,
    name_columns=("prenom", "nom"),
    address_columns=("adresse", "commune"),
)
NOW = datetime(2027, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "address"),
    [
        (["Basile MODÈLE"], ["12, av. de l’Exemple", "99000 EXEMPLEVILLE"]),
        (["Modele", "Basile"], ["12 AVENUE L'EXEMPLE EXEMPLEVILLE"]),
        (["  basile  ", "modèle"], ["12 avenue de l'Exemple, 99000 Exempleville Cedex"]),
    ],
)
def test_one_person_written_three_ways_gives_one_key(name: list[str], address: list[str]) -> None:
    assert tabular.postal_identity(name, address) == "basile modele|12 avenue exemple exempleville"


def test_another_address_or_a_missing_part_is_not_the_same_person() -> None:
    key = tabular.postal_identity(["Basile Modèle"], ["12 avenue de l'Exemple", "Exempleville"])
    assert key != tabular.postal_identity(["Basile Modèle"], ["14 avenue de l'Exemple"])
    assert tabular.postal_identity(["Basile Modèle"], ["", " , "]) is None
    assert tabular.postal_identity([" - "], ["12 rue X"]) is None


def test_a_door_to_door_opt_out_without_email_or_phone_is_recorded() -> None:
    header = ["prenom", "nom", "adresse", "commune", "desinscrit"]
    rows = [
        dict(zip(header, ["Basile", "Modèle", "12 av. de l'Exemple", "Exempleville", "oui"])),
        dict(zip(header, ["Alix", "Fictif", "3 rue des Essais", "Exempleville", ""])),
        dict(zip(header, ["", "", "", "", "oui"])),  # nothing to record: counted
    ]
    split = tabular.split_rows(header, rows, DOOR, ("prenom", "nom"))
    assert split.opted_out == 2
    assert split.postals == {"basile modele|12 avenue exemple exempleville"}
    assert split.opted_out_without_identifier == 1  # before: 2, the sheet's opt-out was lost
    assert tabular.missing_columns(["prenom", "adresse", "desinscrit"], DOOR) == [
        "no name column 'nom'",
        "no address column 'commune'",
    ]


def test_the_list_and_the_filter_match_by_name_and_address(tmp_path: Path) -> None:
    keys.init(tmp_path / "secrets")
    key = keys.hmac_key(tmp_path / "secrets")
    postal = tabular.postal_identity(["Basile Modèle"], ["12 avenue de l'Exemple", "Exempleville"])
    assert postal is not None
    with SuppressionList(db_path(tmp_path), key) as store:
        # the list also holds an address and a number, as after any real purge: a
        # file of names and addresses only is still matched (not refused as one
        # that forgot its phone column)
        store.add(
            ["voter@voisins.example"], ["+33639981234"], postals=[postal],
            election="e", run_id="r", now=NOW,
        )  # fmt: skip
        assert store.count_kind("postal") == 1
        roll = (
            "Nom;Prénoms;Adresse;Code postal;Commune\r\n"
            "MODELE;Basile;12 av. de l'Exemple;99000;Exempleville\r\n"
            "MODELE;Basile;14 av. de l'Exemple;99000;Exempleville\r\n"
        ).encode()
        data, result = filter_table(roll, store)
        assert (result.rows, result.removed, result.without_identifier) == (2, 1, 0)
        assert b"14 av." in data and b"12 av." not in data
        with pytest.raises(ValueError, match="'rue' not in the file's header"):
            filter_table(roll, store, address_columns=["rue"])


# ----------------------------------------------------------------- validation
def test_the_example_door_to_door_sheet_records_its_opt_outs(policies, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    door = load_policies(policies).elections[0].dataset("porte-a-porte")
    assert door.tabular is not None and door.tabular.opt_out is not None
    assert door.tabular.name_columns == ("prenom", "nom")
    assert door.tabular.address_columns == ("adresse", "commune")
    write(load_policies(policies), tmp_path / "build")
    again = load_rendered(next((tmp_path / "build").rglob("agent.json"))).elections[0]
    assert again.dataset("porte-a-porte").tabular == door.tabular


OPT_OUT_BLOCK = '      opt_out:\n        column: desinscrit\n        accepted: [oui, "yes", "1"]\n'


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        (  # the door-to-door sheet without its opt-out column, nothing declared
            OPT_OUT_BLOCK,
            "",
            "datasets[1].tabular.opt_out",
            "or no_opt_outs: <why> when it holds none",
        ),
        (
            "      address_columns: [adresse, commune]\n",
            "",
            "datasets[1].tabular.address_columns",
            "declare name_columns and address_columns together",
        ),
        (
            "    category: campaign\n    # A door",
            "    category: campaign\n    no_opt_outs: rien\n    # A door",
            "datasets[1].no_opt_outs",
            "cannot also hold no opt-out",
        ),
        (
            "      name_columns: [prenom, nom]\n      address_columns: [adresse, commune]\n",
            "",
            "datasets[1].tabular",
            "an opt_out column needs email_column, phone_column or name_columns",
        ),
    ],
)
def test_a_campaign_dataset_declares_its_opt_outs_or_none(
    policies,  # type: ignore[no-untyped-def]  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    field: str,
    words: str,
) -> None:
    line = edit(policies, ELECTION, old, new)
    code, lines = run_validate(policies, capsys)
    assert code == 2
    assert any(
        line_.startswith(f"{policies / ELECTION}:") and f" {field}: " in line_ and words in line_
        for line_ in lines
    ), (line, lines)


def test_a_dataset_declared_to_hold_no_opt_out_is_valid(policies, capsys) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    edit(
        policies,
        ELECTION,
        "    tabular:\n" + OPT_OUT_BLOCK,
        "    no_opt_outs: tracts\n    tabular:\n",
    )
    edit(policies, ELECTION, "      name_columns: [prenom, nom]\n", "")
    edit(policies, ELECTION, "      address_columns: [adresse, commune]\n", "")
    edit(policies, ELECTION, "    no_opt_outs: tracts\n    tabular:\n", "    no_opt_outs: tracts\n")
    code, lines = run_validate(policies, capsys)
    assert code == 0, lines
    door = load_policies(policies).elections[0].dataset("porte-a-porte")
    assert door.tabular is None and door.no_opt_outs == "tracts"


def test_a_letter_is_added_by_hand_and_honoured_by_the_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from isoloir.cli import main

    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(tmp_path / "secrets"))
    keys.init(tmp_path / "secrets")
    state = tmp_path / "state"
    state.mkdir()
    add = ["suppression", "add", "--state-dir", str(state), "--postal"]
    assert main([*add, "Basile Modèle", "12 av. de l'Exemple, 99000 Exempleville"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("added 1, already present 0") and "Modèle" not in out
    assert main([*add, "Basile Modèle", " "]) == 2
    assert "a name and an address are both needed" in capsys.readouterr().err
    roll = tmp_path / "liste.csv"
    roll.write_text(
        "nom;prenom;adresse;commune\nMODELE;Basile;12 avenue de l'Exemple;Exempleville\n"
        "ESSAI;Dorian;1 rue X;Exempleville\n",
        encoding="utf-8",
    )
    out_file = tmp_path / "liste-filtree.csv"
    cmd = ["suppression", "filter", "--state-dir", str(state), str(roll), "-o", str(out_file)]
    assert main(cmd) == 0
    assert "2 rows read, 1 removed" in capsys.readouterr().out
    assert b"MODELE" not in out_file.read_bytes() and b"ESSAI" in out_file.read_bytes()
