"""The guard apart from the agents (security N1, N4, N15): root's release/delete
never write through a link the guard's or the agents' user planted; the guard
reads the agents' export of the suppression list, not the list itself, and
defers mail when it has none; an opt-out's body is never kept, and no body is
kept past the guard's limit."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.unit.test_mailguard_guard import EXAMPLE, SENDER, message

from isoloir.mailguard import decisions, lookup, milter
from isoloir.policy import load_policies
from isoloir.retention import keys
from isoloir.retention.suppression import SuppressionError, SuppressionList, db_path

NOW = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
QID = "4Bc9xYz1QrT"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    (tmp_path / "state" / "mailguard").mkdir(parents=True)
    return tmp_path / "state"


# -- N4 ---------------------------------------------------------------------------------


def test_settle_never_writes_through_a_planted_link(state: Path, tmp_path: Path) -> None:
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    victim.chmod(0o600)
    settled = state / "mailguard" / "settled"
    settled.mkdir()
    (settled / QID).symlink_to(victim)
    decisions.settle(state, QID, "released", now=NOW)
    assert victim.read_text() == "root:secret\n"
    marker = settled / QID
    assert not marker.is_symlink() and marker.read_text().startswith("released 2027-01-10")


def test_settle_refuses_a_settled_directory_swapped_for_a_link(state: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc-sudoers.d"
    elsewhere.mkdir()
    (state / "mailguard" / "settled").symlink_to(elsewhere)
    with pytest.raises(OSError):
        decisions.settle(state, QID, "deleted", now=NOW)
    assert list(elsewhere.iterdir()) == []


def test_settle_refuses_a_guard_directory_swapped_for_a_link(state: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (state / "mailguard").rmdir()
    (state / "mailguard").symlink_to(elsewhere)
    with pytest.raises(OSError):
        decisions.settle(state, QID, "deleted", now=NOW)
    assert list(elsewhere.iterdir()) == []


# -- N1: the guard's copy of the suppression list ---------------------------------------


def test_the_guard_defers_without_the_agents_export(state: Path, tmp_path: Path) -> None:
    keys.init(tmp_path / "secrets")
    run = milter.Runtime(load_policies(EXAMPLE), state, keys.hmac_key(tmp_path / "secrets"))
    c = milter.Collected(login="dmodele", mail_from=f"<{SENDER}>")
    c.recipients.append("<a@voisins.example>")
    c.headers.append(message().split(b"\n\n", 1)[0].replace(b"\n", b"\r\n") + b"\r\n")
    c.body.append(b"Bonjour.\r\n")
    verdict = run.evaluate(c)
    assert (verdict.action, verdict.rule, verdict.smtp_code) == ("reject", "guard_error", 451)


def test_the_export_follows_the_list_and_is_read_by_the_guard(state: Path, tmp_path: Path) -> None:
    keys.init(tmp_path / "secrets")
    key = keys.hmac_key(tmp_path / "secrets")
    assert lookup.export(state, key) == 0  # no list yet: an empty copy
    snapshot = lookup.Snapshot(state, key)
    assert not snapshot.contains("stop@voisins.example", None)
    with SuppressionList(db_path(state), key) as store:
        store.add(["stop@voisins.example"], ["+33639981234"], election="e", run_id="r", now=NOW)
    assert lookup.export(state, key) == 2
    assert snapshot.contains("Stop@Voisins.example", None)  # the new file is reopened
    assert snapshot.count() == 2
    exported = lookup.export_path(state)
    assert oct(exported.stat().st_mode & 0o777) == oct(lookup.EXPORT_MODE)
    dump = "\n".join(sqlite3.connect(exported).iterdump()).lower()
    assert "voisins" not in dump and "3363998" not in dump
    assert not list((state / "tmp").iterdir())  # the build is removed
    with pytest.raises(SuppressionError):
        lookup.Snapshot(state, os.urandom(32)).contains("stop@voisins.example", None)


def test_the_export_replaces_a_planted_link_never_writes_through_it(
    state: Path, tmp_path: Path
) -> None:
    keys.init(tmp_path / "secrets")
    victim = tmp_path / "agents-database"
    victim.write_bytes(b"precious")
    lookup.export_path(state).symlink_to(victim)
    lookup.export(state, keys.hmac_key(tmp_path / "secrets"))
    assert victim.read_bytes() == b"precious"
    assert not lookup.export_path(state).is_symlink()


# -- N15: bounded memory ----------------------------------------------------------------


def test_no_body_is_kept_past_the_limit() -> None:
    c = milter.Collected()
    for _ in range(10):
        c.add_body(b"x" * 1000, 2500)
    assert c.body_bytes == 2501 and sum(len(b) for b in c.body) == 2501


def test_an_opt_out_needs_no_body(tmp_path: Path) -> None:
    policies = load_policies(EXAMPLE)
    run = milter.Runtime(policies, tmp_path, None)
    unsub = policies.baseline.organisation.unsubscribe
    assert run.unsubscribe_only([f"<{unsub.upper()}>"])
    assert not run.unsubscribe_only([f"<{unsub}>", "<a@voisins.example>"])
    assert not run.unsubscribe_only([])
