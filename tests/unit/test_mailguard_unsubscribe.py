"""Unsubscribing by mail: the sender is suppressed at once and dropped from the
very next campaign message; one short confirmation a day, to that sender only;
the decision log and `isoloir status` hold counts only."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from tests.unit.test_mailguard_guard import (
    EXAMPLE,
    SENDER,
    TODAY,
    UNSUB,
    message,
    with_mail,
)

from isoloir.daemon import status_data, status_text
from isoloir.mailguard import decisions, unsubscribe
from isoloir.mailguard.guard import Envelope, Guard
from isoloir.policy import load_policies
from isoloir.policy.model import Policies
from isoloir.retention import keys
from isoloir.retention.suppression import SuppressionList, db_path

VOTER = "Voter.Fatigue@Voisins.example"
T0 = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def policies() -> Policies:
    return load_policies(EXAMPLE)


@pytest.fixture
def store(tmp_path: Path) -> SuppressionList:
    keys.init(tmp_path / "secrets")
    return SuppressionList(db_path(tmp_path / "state"), keys.hmac_key(tmp_path / "secrets"))


def to_unsubscribe(sender: str = VOTER, **headers: str) -> tuple[Envelope, bytes]:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = UNSUB
    msg["Subject"] = "unsubscribe"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("STOP\n")
    return Envelope(login=None, mail_from=sender, recipients=(UNSUB,)), msg.as_bytes()


def test_writing_to_the_unsubscribe_address_drops_the_voter_from_the_next_message(
    policies: Policies, store: SuppressionList, tmp_path: Path
) -> None:
    clock = Clock()
    g = Guard(policies, suppression=store, today=TODAY, state_dir=tmp_path / "state", now=clock)
    campaign = Envelope("dmodele", SENDER, ("a@voisins.example", VOTER.lower()))
    before = g.evaluate(campaign, message())
    assert before.drop == ()
    v = g.evaluate(*to_unsubscribe())
    assert (v.action, v.rule, v.smtp_code, v.counts["unsubscribed"]) == (
        "unsubscribe", "unsubscribe", 250, 1
    )  # fmt: skip
    assert VOTER.lower() not in v.text.lower()
    reply = v.reply
    assert reply is not None
    assert reply["To"] == VOTER.lower() and reply["From"] == UNSUB
    assert reply["Auto-Submitted"] == "auto-replied"
    body = reply.get_content()
    assert "Désinscription" in reply["Subject"] and "removed" in body
    after = g.evaluate(campaign, message())
    assert after.drop == (VOTER.lower(),) and after.counts["dropped"] == 1
    # the entry is the purge's kind: an email digest of the normalised address
    row = store._db.execute("SELECT kind, election, run_id FROM suppressed").fetchone()
    assert row == ("email", unsubscribe.ELECTION, unsubscribe.RUN_ID)


def test_confirmation_is_rate_limited_per_address(
    policies: Policies, store: SuppressionList, tmp_path: Path
) -> None:
    clock = Clock()
    g = Guard(policies, suppression=store, today=TODAY, state_dir=tmp_path / "state", now=clock)
    first = g.evaluate(*to_unsubscribe())
    second = g.evaluate(*to_unsubscribe())
    assert first.reply is not None and second.reply is None
    assert (first.counts["unsubscribed"], second.counts["unsubscribed"]) == (1, 0)
    other = g.evaluate(*to_unsubscribe("autre@voisins.example"))
    assert other.reply is not None
    clock.at = T0 + timedelta(hours=25)
    assert g.evaluate(*to_unsubscribe()).reply is not None
    # the rate-limit table holds digests, never addresses
    db = sqlite3.connect(unsubscribe.db_path(tmp_path / "state"))
    dumped = "\n".join(db.iterdump())
    assert "voisins" not in dumped.lower() and "confirmed" in dumped


def test_no_reply_to_automatic_messages_bounces_or_when_switched_off(
    policies: Policies, store: SuppressionList, tmp_path: Path
) -> None:
    g = Guard(policies, suppression=store, today=TODAY, state_dir=tmp_path / "state", now=Clock())
    auto = g.evaluate(*to_unsubscribe(Auto_Submitted="auto-replied"))
    assert auto.reply is None and auto.counts["unsubscribed"] == 1  # still recorded
    bulk = g.evaluate(*to_unsubscribe("liste@voisins.example", Precedence="bulk"))
    assert bulk.reply is None
    bounce_env, bounce = to_unsubscribe()
    v = g.evaluate(Envelope(None, "", bounce_env.recipients), bounce)
    assert v.action == "unsubscribe" and v.counts["unsubscribed"] == 0 and v.reply is None
    quiet = Guard(
        with_mail(policies, unsubscribe_confirm=False),
        suppression=store, today=TODAY, state_dir=tmp_path / "state", now=Clock(),
    )  # fmt: skip
    v2 = quiet.evaluate(*to_unsubscribe("nouveau@voisins.example"))
    assert v2.reply is None and v2.counts["unsubscribed"] == 1


def test_decisions_are_logged_as_counts_and_shown_by_status(
    policies: Policies, store: SuppressionList, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    g = Guard(policies, suppression=store, today=TODAY, state_dir=state, now=Clock())
    store.add([VOTER.lower()], [], election="x", run_id="r", now=T0)
    six = tuple(f"v{i}@voisins.example" for i in range(6))
    verdicts = [
        g.evaluate(Envelope("dmodele", SENDER, ("a@voisins.example", VOTER)), message()),
        g.evaluate(Envelope("dmodele", SENDER, six), message(to=six)),
        g.evaluate(Envelope("ptest", SENDER, ("a@voisins.example",)), message()),
    ]
    now = datetime.now(UTC)
    for v in verdicts:
        decisions.record(state, v, now=now)
    decisions.record(state, verdicts[0], now=now - timedelta(days=2))  # outside the window
    got = decisions.summary(state, now - timedelta(hours=24))
    assert got["actions"] == {"accept": 1, "reject": 2}
    assert got["rules"] == {"ok": 1, "visible_recipients": 1, "sender_not_member": 1}
    assert got["dropped"] == 1 and got["messages"] == 3
    dumped = "\n".join(sqlite3.connect(decisions.db_path(state)).iterdump()).lower()
    assert "voisins" not in dumped and "@" not in dumped
    text = status_text(status_data(state), "en")
    assert "mail guard: 1 accepted, 2 refused, 0 held, 1 dropped recipients (24 h)" in text


def test_status_without_the_decision_log_says_nothing_about_mail(tmp_path: Path) -> None:
    data = status_data(tmp_path)
    assert data["mailguard"] is None and "mail guard" not in status_text(data)
    assert not decisions.db_path(tmp_path).exists()  # status never creates it
    assert decisions.summary(tmp_path, T0)["messages"] == 0
