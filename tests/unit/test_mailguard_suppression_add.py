"""`isoloir suppression add`: a STOP export or a web form's CSV goes into the
suppression list (same normalisation and HMAC as the purge), is honoured by
`suppression filter` and by the mail guard, prints counts only, and refuses a
bad line with file:line, adding nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from tests.unit.test_mailguard_guard import EXAMPLE, SENDER, message

from isoloir.cli import main
from isoloir.mailguard.guard import Envelope, Guard
from isoloir.policy import load_policies
from isoloir.retention import keys
from isoloir.retention.suppression import SuppressionList, db_path, read_entries
from isoloir.retention.tabular import normalise_phone

STOP_EXPORT = "numero\n06 39 98 12 34\n\n+33639981235\n0033 6 39 98 12 36;STOP;2027-01-02\n"
FORM_CSV = (
    "Nom;Courriel;Désinscription\r\nÉlise Démo;Elise.Demo@Voisins.example;oui\r\n"
    "Zoé Factice;;oui\r\n"
)
PROSPECTS = (
    "nom;email;telephone\n"
    "Demo;elise.demo@voisins.example;01 99 00 12 34\n"
    "Stop1;a@voisins.example;06 39 98 12 34\n"
    "Stop2;b@voisins.example;+33 6 39 98 12 35\n"
    "Stop3;c@voisins.example;06.39.98.12.36\n"
    "Garde;d@voisins.example;06 39 98 12 37\n"
)


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.state.mkdir()
        self.secrets = root / "secrets"
        keys.init(self.secrets)

    def add(self, *args: str) -> int:
        return main(["suppression", "add", "--state-dir", str(self.state), *args])

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, encoding="utf-8")
        return path

    def entries(self) -> int:
        path = db_path(self.state)
        if not path.exists():
            return 0
        with SuppressionList.for_filtering(path, keys.hmac_key(self.secrets)) as store:
            return store.count()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.delenv("ISOLOIR_STATE_DIR", raising=False)
    yield Env(tmp_path)


def test_stop_export_and_form_are_honoured_by_filter_and_guard(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert env.add("--file", str(env.write("stop.txt", STOP_EXPORT))) == 0
    out = capsys.readouterr().out
    assert out.startswith("added 3, already present 0")
    assert env.add("--file", str(env.write("form.csv", FORM_CSV))) == 0
    out = capsys.readouterr().out
    assert out.startswith("added 1, already present 0") and "1 row(s) without email" in out
    # the filter removes the three STOP numbers and the form's address
    prospects = env.write("prospects.csv", PROSPECTS)
    result = env.root / "propres.csv"
    cmd = ["suppression", "filter", "--state-dir", str(env.state), str(prospects)]
    assert main([*cmd, "-o", str(result)]) == 0
    assert "5 rows read, 4 removed" in capsys.readouterr().out
    kept = result.read_text(encoding="utf-8").splitlines()
    assert kept == ["nom;email;telephone", "Garde;d@voisins.example;06 39 98 12 37"]
    # the guard drops the form's address from the next campaign message
    with SuppressionList(db_path(env.state), keys.hmac_key(env.secrets)) as store:
        g = Guard(load_policies(EXAMPLE), suppression=store, today=date(2027, 1, 10))
        rcpts = ("<ELISE.DEMO@voisins.example>", "d@voisins.example")
        v = g.evaluate(Envelope("dmodele", SENDER, rcpts), message())
    assert v.action == "accept" and v.drop == (rcpts[0],)


def test_values_on_the_command_line_and_already_present(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert env.add("voter@voisins.example", "06 39 98 12 34") == 0
    assert capsys.readouterr().out.strip() == "added 2, already present 0; 2 read, 2 distinct"
    assert env.add("Voter@Voisins.example", "+33 639981234", "mailto:new@voisins.example") == 0
    printed = capsys.readouterr().out
    assert printed.strip() == "added 1, already present 2; 3 read, 3 distinct"
    assert "voisins" not in printed and "639" not in printed  # counts only
    assert env.entries() == 3


def test_a_bad_line_refuses_the_whole_file(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    bad = env.write("stop.txt", "numero\n06 39 98 12 34\n+33639981235\nappelez-moi\n0639981236\n")
    assert env.add("--file", str(bad)) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4: not an address or phone number" in err and "nothing was added" in err
    assert env.entries() == 0  # nothing half-written
    assert env.add("--skip-unreadable", "--file", str(bad)) == 0
    out = capsys.readouterr().out
    assert out.startswith("added 3, already present 0, unreadable 1 (")
    assert ":4: not an address or phone number)" in out
    bad_arg = env.add("ok@voisins.example", "pas-un-numero")
    assert bad_arg == 2 and "argument 2: not an address" in capsys.readouterr().err


def test_a_bad_table_cell_names_its_line(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    form = env.write("form.csv", "email;telephone\na@voisins.example;\n;12\n")
    assert env.add("--file", str(form)) == 2
    assert f"{form}:3: not a phone number" in capsys.readouterr().err


def test_setup_mistakes_exit_2_in_one_line(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suppression", "add", "--state-dir", str(env.root / "typo"), "a@b.example"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (env.root / "typo").exists()
    assert env.add() == 2
    assert env.add("--file", str(env.root / "absent.csv")) == 2
    binary = env.root / "export.bin"
    binary.write_bytes(b"\x00\x01\x02numero")
    assert env.add("--file", str(binary)) == 2
    err = capsys.readouterr().err
    assert "binary content" in err and "Traceback" not in err
    col = env.write("form.csv", "email\na@voisins.example\n")
    assert env.add("--file", str(col), "--phone-column", "portable") == 2
    assert "column 'portable' not in the file's header" in capsys.readouterr().err


def test_read_entries_recognises_tables_and_lists() -> None:
    table = read_entries("Téléphone,Nom\n06 39 98 12 34,A\n,B\n".encode("cp1252"))
    assert (table.phones, table.without_identifier) == ([normalise_phone("0639981234")], 1)
    plain = read_entries(b"\xef\xbb\xbf+33 1 99 00 12 34\r\n0199001235\r\n")
    assert plain.phones == ["+33199001234", "+33199001235"] and not plain.problems


# -- CLI review N10 -----------------------------------------------------------------


def test_five_spellings_of_one_number_are_one_entry_and_said_so(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    spellings = ["+33 6 39 98 12 34", "0033 6 39 98 12 34", "+33 (0)6 39 98 12 34",
                 "06.39.98.12.34", "06-39-98-12-34"]  # fmt: skip
    assert env.add(*spellings) == 0
    assert capsys.readouterr().out.strip() == "added 1, already present 0; 5 read, 1 distinct"


def test_an_empty_or_header_only_file_is_refused(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    for text in ("", "\n\n", "email;telephone\n", "numero\n"):
        assert env.add("--file", str(env.write("vide.csv", text))) == 2, text
        err = capsys.readouterr().err
        assert "no address or phone number in it" in err and "nothing was added" in err
    assert env.entries() == 0


def test_excel_sep_line_and_gsm_header_are_tables(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    sep = env.write("excel-sep.csv", "sep=;\nNom;Courriel\nA;a@voisins.example\n")
    assert env.add("--file", str(sep)) == 0
    assert "matched on: Courriel (email)" in capsys.readouterr().out
    gsm = env.write("gsm.csv", "Nom;GSM;Ville\nB;06 39 98 12 34;Lyon\n")
    assert env.add("--file", str(gsm)) == 0
    assert "matched on: GSM (phone)" in capsys.readouterr().out
    assert env.entries() == 2


def test_fullwidth_digits_and_a_trailing_dot_are_the_same_person(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert normalise_phone("+33６12345678") == "+33612345678"
    assert env.add("bob@voisins.example", "+33612345678") == 0
    capsys.readouterr()
    assert env.add("bob@voisins.example.", "+33６12345678") == 0
    assert capsys.readouterr().out.startswith("added 0, already present 2")
    assert env.add("bob@voisins..example") == 2  # a typo, never an entry of its own
    assert "argument 1: not an address or phone number" in capsys.readouterr().err


def test_a_number_excel_shortened_gets_a_hint(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert env.add("--file", str(env.write("x.txt", "612345678\n6,11111E+08\n"))) == 2
    assert "format the column as Text" in capsys.readouterr().err


def test_add_takes_no_config(env: Env) -> None:
    with pytest.raises(SystemExit) as exit_:
        env.add("--config", "agent.json", "a@voisins.example")
    assert exit_.value.code == 2
