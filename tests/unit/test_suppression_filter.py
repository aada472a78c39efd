"""`isoloir suppression filter`: never creates a list or a key, refuses another key,
says what it checked against, writes atomically and keeps the input's encoding."""

from __future__ import annotations

import codecs
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from isoloir.cli import main
from isoloir.retention import keys, tabular
from isoloir.retention.suppression import (
    SuppressionError,
    SuppressionList,
    db_path,
    filter_table,
    key_id,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ROWS = (
    "Prénom;Nom;E-mail;Téléphone\r\n"
    "Élise;Démo;elise@exemple.example;01 99 00 12 34\r\n"
    "Gaëlle;Modèle;gaelle@exemple.example;06 39 98 12 34\r\n"
    "Zoé;Factice;zoe@exemple.example;06 39 98 12 35\r\n"
)


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.secrets = root / "secrets"
        self.input = root / "nouveaux.csv"
        self.input.write_bytes(ROWS.encode("cp1252"))


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    e = Env(tmp_path)
    keys.init(e.secrets)
    with SuppressionList(db_path(e.state), keys.hmac_key(e.secrets)) as store:
        store.add(  # normalised, as the purge records them
            ["elise@exemple.example"],
            [tabular.normalise_phone("+262 639 98 12 34") or ""],
            election="x",
            run_id="r",
            now=NOW,
        )
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(e.secrets))
    monkeypatch.delenv("ISOLOIR_STATE_DIR", raising=False)
    yield e


def run(env: Env, *args: str, state: Path | None = None) -> int:
    return main(["suppression", "filter", "--state-dir", str(state or env.state), *args])


def test_filter_keeps_encoding_and_says_what_it_checked(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    out = env.root / "filtre.csv"
    assert run(env, str(env.input), "-o", str(out)) == 0
    printed = capsys.readouterr().out
    assert "3 rows read, 2 removed" in printed
    assert "checked against 2 suppression entries" in printed and "cp1252" in printed
    data = out.read_bytes()
    assert data == (
        "Prénom;Nom;E-mail;Téléphone\r\nZoé;Factice;zoe@exemple.example;06 39 98 12 35\r\n"
    ).encode("cp1252")
    assert not list(env.root.glob(".filtre.csv.*"))  # no temporary file left


def test_filter_keeps_a_utf8_bom_and_lf(env: Env) -> None:
    env.input.write_bytes(codecs.BOM_UTF8 + ROWS.replace("\r\n", "\n").encode())
    out = env.root / "filtre.csv"
    assert run(env, str(env.input), "-o", str(out)) == 0
    data = out.read_bytes()
    assert data.startswith(codecs.BOM_UTF8) and b"\r\n" not in data
    assert data.decode("utf-8-sig").splitlines()[1].startswith("Zoé;")


def test_filter_never_creates_a_list(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    typo = env.root / "etat-typo"
    assert run(env, str(env.input), state=typo) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"no suppression list at {db_path(typo)} (does not exist)"
    assert not typo.exists()


def test_filter_never_creates_a_key(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = env.root / "autres-secrets"
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(other))
    assert run(env, str(env.input)) == 2
    assert "is missing" in capsys.readouterr().err
    assert not other.exists()
    assert not (env.root / "nouveaux.filtered.csv").exists()


def test_filter_refuses_another_key(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = env.root / "autre-machine"
    keys.init(other)
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(other))
    assert run(env, str(env.input)) == 2
    err = capsys.readouterr().err
    assert "the HMAC key does not match the suppression list" in err
    assert len(err.strip().splitlines()) == 1
    # and the purge refuses to add entries under that key
    with pytest.raises(SuppressionError):
        SuppressionList(db_path(env.state), keys.hmac_key(other))


def test_key_permission_error_is_one_line(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        key_file = env.secrets / keys.HMAC_KEY_FILE
        key_file.write_text("pas une clé\n")  # root reads everything: use a bad key instead
        assert run(env, str(env.input)) == 2
        err = capsys.readouterr().err
        assert "does not hold a hex key" in err and "Traceback" not in err
        return
    os.chmod(env.secrets, 0o000)
    try:
        assert run(env, str(env.input)) == 2
    finally:
        os.chmod(env.secrets, 0o700)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Permission denied" in err


def test_old_list_without_key_id_is_accepted_with_a_warning_then_recorded(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite3.connect(db_path(env.state))
    db.execute("DROP TABLE meta")
    db.commit()
    db.close()
    assert run(env, str(env.input), "-o", str(env.root / "f.csv")) == 0
    captured = capsys.readouterr()
    assert "does not record its key's identifier" in captured.err
    assert "2 removed" in captured.out
    # the purge's next write records it
    key = keys.hmac_key(env.secrets)
    SuppressionList(db_path(env.state), key).close()
    row = sqlite3.connect(db_path(env.state)).execute("SELECT value FROM meta").fetchone()
    assert row == (key_id(key),)


@pytest.mark.parametrize("target", ["dossier", "absent/x.csv"])
def test_output_errors_are_one_line(
    env: Env, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (env.root / "dossier").mkdir()
    out = env.root / target
    assert run(env, str(env.input), "-o", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cannot write {out}: ") and len(err.splitlines()) == 1
    assert not (env.root / "absent").exists()


def test_filter_table_reports_entries_and_encoding(tmp_path: Path) -> None:
    keys.init(tmp_path)
    with SuppressionList(tmp_path / "s.sqlite", keys.hmac_key(tmp_path)) as store:
        store.add(["gaelle@exemple.example"], [], election="x", run_id="r", now=NOW)
        out, result = filter_table(ROWS.encode("cp1252"), store)
    assert (result.rows, result.removed, result.entries) == (3, 1, 1)
    assert (result.encoding, result.bom) == ("cp1252", False)
    header, rows = tabular.read_table(out)
    assert header == ["Prénom", "Nom", "E-mail", "Téléphone"]
    assert [r["Prénom"] for r in rows] == ["Élise", "Zoé"]


def test_output_through_a_symlink_is_refused_and_dash_is_stdout(
    env: Env, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """CLI review N1: `-o /dev/stdout` as root replaced the /dev/stdout link with voters' data."""
    target = env.root / "cible.txt"
    target.write_bytes(b"untouched")
    link = env.root / "stdout"
    link.symlink_to(target)
    assert run(env, str(env.input), "-o", str(link)) == 2
    assert "a symbolic link" in capfdbinary.readouterr().err.decode()
    assert link.is_symlink() and target.read_bytes() == b"untouched"
    assert not (env.root / "-").exists()

    assert run(env, str(env.input), "-o", "-") == 0
    captured = capfdbinary.readouterr()
    assert captured.out == (
        "Prénom;Nom;E-mail;Téléphone\r\nZoé;Factice;zoe@exemple.example;06 39 98 12 35\r\n"
    ).encode("cp1252")
    assert b"wrote the standard output" in captured.err
    assert not (env.root / "-").exists() and not list(Path.cwd().glob("-"))


# -- CLI review N2: phone columns as people name them, and which columns were used --


@pytest.mark.parametrize(
    "header",
    [
        "Courriel;Téléphone fixe;Téléphone portable",
        "Courriel;N° de téléphone;Ville",
        "Email;GSM;Ville",
        "Email 1;Numéro de portable;Ville",
    ],
)
def test_a_suppressed_mobile_is_removed_whatever_its_column_is_called(
    env: Env, capsys: pytest.CaptureFixture[str], header: str
) -> None:
    """The list holds a number (an SMS STOP); before, these headers were not phone
    columns, the row was matched on email alone and kept, exit 0."""
    with SuppressionList(db_path(env.state), keys.hmac_key(env.secrets)) as store:
        store.add([], ["+33611111116"], election="x", run_id="sms", now=NOW)
    second = "01 99 00 12 34;06 11 11 11 16" if "fixe" in header else "06 11 11 11 16;Lyon"
    env.input.write_text(
        f"{header}\r\nstop@exemple.example;{second}\r\n"
        f"garde@exemple.example;{second.replace('16', '17')}\r\n",
        encoding="utf-8",
    )
    out = env.root / "filtre.csv"
    assert run(env, str(env.input), "-o", str(out)) == 0
    printed = capsys.readouterr().out
    assert "2 rows read, 1 removed" in printed
    assert "stop@" not in out.read_text() and "garde@" in out.read_text()
    # which columns were used is said (names only, never a value)
    columns = header.split(";")
    assert f"matched on: {columns[0]} (email), {columns[1]} (phone)" in printed
    if "fixe" in header:
        assert f"{columns[2]} (phone)" in printed


def test_a_list_with_numbers_and_a_file_without_a_phone_column_is_refused(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Matching on email alone would keep every SMS opt-out: refused unless the
    columns are named."""
    env.input.write_text("Nom;Courriel;Ville\r\nA;a@exemple.example;Lyon\r\n", encoding="utf-8")
    out = env.root / "filtre.csv"
    assert run(env, str(env.input), "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert "the suppression list holds 1 phone numbers but no column of this file" in err
    assert "--phone-column" in err and not out.exists()
    assert run(env, str(env.input), "-o", str(out), "--email-column", "Courriel") == 0
    assert "matched on: Courriel (email)" in capsys.readouterr().out


def test_yes_no_columns_named_like_phones_are_not_phone_columns(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.input.write_text(
        "Email;Consentement téléphone;Mobile\r\nx@exemple.example;oui;06 39 98 12 34\r\n",
        encoding="utf-8",
    )
    assert run(env, str(env.input), "-o", str(env.root / "f.csv")) == 0
    assert "matched on: Email (email), Mobile (phone);" in capsys.readouterr().out


def test_excel_sep_line_is_understood_by_filter(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """CLI review N10: `sep=;` first line (Excel) made 'no email or phone column'."""
    env.input.write_bytes(b"sep=;\r\n" + ROWS.encode("cp1252"))
    assert run(env, str(env.input), "-o", str(env.root / "f.csv")) == 0
    assert "3 rows read, 2 removed" in capsys.readouterr().out
