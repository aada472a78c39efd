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
AUTHSERV = "relais.mouvement-exemple.example"


def spf_pass(sender: str = VOTER, authserv: str = AUTHSERV) -> str:
    return f"{authserv}; spf=pass smtp.mailfrom={sender}; dkim=none"


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


def guard_for(policies: Policies, store: SuppressionList, state: Path, clock: object) -> Guard:
    return Guard(
        policies, suppression=store, today=TODAY, state_dir=state, now=clock,  # type: ignore[arg-type]
        authserv_id=AUTHSERV,
    )  # fmt: skip


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
    g = guard_for(policies, store, tmp_path / "state", clock)
    campaign = Envelope("dmodele", SENDER, ("a@voisins.example", VOTER.lower()))
    before = g.evaluate(campaign, message())
    assert before.drop == ()
    v = g.evaluate(*to_unsubscribe(Authentication_Results=spf_pass()))
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
    # A mail opt-out, kept apart: the suppression list (the purge's) is untouched.
    assert store.count() == 0
    with unsubscribe.MailOptOuts(unsubscribe.optouts_path(tmp_path / "state")) as optouts:
        assert optouts.count() == (1, 1)
        assert optouts.contains(store.digest("email", VOTER.lower()))


def test_confirmation_is_rate_limited_per_address(
    policies: Policies, store: SuppressionList, tmp_path: Path
) -> None:
    clock = Clock()
    g = guard_for(policies, store, tmp_path / "state", clock)
    ok = {"Authentication_Results": spf_pass()}
    first = g.evaluate(*to_unsubscribe(**ok))
    second = g.evaluate(*to_unsubscribe(**ok))
    assert first.reply is not None and second.reply is None
    assert (first.counts["unsubscribed"], second.counts["unsubscribed"]) == (1, 0)
    other = g.evaluate(
        *to_unsubscribe(
            "autre@voisins.example", Authentication_Results=spf_pass("autre@voisins.example")
        )
    )
    assert other.reply is not None
    clock.at = T0 + timedelta(hours=25)
    assert g.evaluate(*to_unsubscribe(**ok)).reply is not None
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


# -- security N2: forged opt-outs ------------------------------------------------------


def test_a_forged_opt_out_never_touches_the_suppression_list_and_gets_no_reply(
    policies: Policies, store: SuppressionList, tmp_path: Path
) -> None:
    """Anyone can write MAIL FROM:<victim> on port 25: the victim is dropped from
    campaign mail, but the purge's list (and so the victim's recorded consent) is
    untouched, and no confirmation goes to the victim."""
    g = guard_for(policies, store, tmp_path / "state", Clock())
    forged = g.evaluate(*to_unsubscribe("marie.electrice@voisins.example"))
    assert forged.action == "unsubscribe" and forged.counts["unsubscribed"] == 1
    assert forged.reply is None and forged.counts["authenticated"] == 0
    assert not store.contains("marie.electrice@voisins.example", None)
    assert store.count() == 0


@pytest.mark.parametrize(
    "results",
    [
        "autre-relais.example; spf=pass smtp.mailfrom=voter.fatigue@voisins.example",
        f"{AUTHSERV}; spf=fail smtp.mailfrom=voter.fatigue@voisins.example",
        f"{AUTHSERV}; spf=pass smtp.mailfrom=x@attaquant.example",
        f"{AUTHSERV}; dkim=pass header.d=example",
        f"{AUTHSERV}; dkim=pass header.d=attaquant.example",
    ],
)
def test_no_confirmation_unless_the_relays_own_results_align(
    policies: Policies, store: SuppressionList, tmp_path: Path, results: str
) -> None:
    g = guard_for(policies, store, tmp_path / "state", Clock())
    v = g.evaluate(*to_unsubscribe(Authentication_Results=results))
    assert v.reply is None and v.counts["authenticated"] == 0


def test_dkim_aligned_with_a_parent_domain_confirms(
    policies: Policies, store: SuppressionList, tmp_path: Path
) -> None:
    g = guard_for(policies, store, tmp_path / "state", Clock())
    sender = "voter@mail.voisins.example"
    results = f"{AUTHSERV}; spf=softfail smtp.mailfrom={sender}; dkim=pass header.d=voisins.example"
    v = g.evaluate(*to_unsubscribe(sender, Authentication_Results=results))
    assert v.reply is not None and v.counts["authenticated"] == 1
    # Without a configured authserv-id nothing is trusted.
    plain = Guard(policies, suppression=store, today=TODAY, state_dir=tmp_path / "s2", now=Clock())
    assert plain.evaluate(*to_unsubscribe(sender, Authentication_Results=results)).reply is None


def test_opt_outs_are_rate_limited_per_sending_server(
    policies: Policies, store: SuppressionList, tmp_path: Path
) -> None:
    clock = Clock()
    g = guard_for(policies, store, tmp_path / "state", clock)

    def from_client(n: int, client: str) -> str:
        env, raw = to_unsubscribe(f"victime{n}@voisins.example")
        return g.evaluate(Envelope(None, env.mail_from, env.recipients, client), raw).rule

    rules = [from_client(n, "192.0.2.7") for n in range(unsubscribe.SOURCE_LIMIT + 3)]
    assert rules.count("unsubscribe") == unsubscribe.SOURCE_LIMIT
    assert rules[-1] == "unsubscribe_rate"
    assert from_client(99, "198.51.100.9") == "unsubscribe"  # another server
    clock.at = T0 + unsubscribe.SOURCE_WINDOW + timedelta(minutes=1)
    assert from_client(100, "192.0.2.7") == "unsubscribe"
    with unsubscribe.MailOptOuts(unsubscribe.optouts_path(tmp_path / "state")) as optouts:
        assert optouts.count()[0] == unsubscribe.SOURCE_LIMIT + 2
    dumped = "\n".join(sqlite3.connect(unsubscribe.db_path(tmp_path / "state")).iterdump())
    assert "192.0.2.7" not in dumped and "voisins" not in dumped


def test_limited_verdict_is_a_temporary_refusal(
    policies: Policies, store: SuppressionList, tmp_path: Path
) -> None:
    g = guard_for(policies, store, tmp_path / "state", Clock())
    for n in range(unsubscribe.SOURCE_LIMIT):
        g.evaluate(*to_unsubscribe(f"v{n}@voisins.example"))
    v = g.evaluate(*to_unsubscribe("encore@voisins.example"))
    assert (v.action, v.rule, v.smtp_code, v.smtp_status) == (
        "reject", "unsubscribe_rate", 450, "4.7.1"
    )  # fmt: skip


# -- security N7: the suppressed mailbox in every spelling -----------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        '"voter.fatigue"@voisins.example',
        "voter.fatigue@voisins.example.",
        "voter.fatigue%voisins.example@localhost",
        "voisins.example!voter.fatigue@localhost",
        "<Voter.Fatigue@VOISINS.example>",
    ],
)
def test_suppressed_recipient_is_dropped_in_every_spelling(
    policies: Policies, store: SuppressionList, tmp_path: Path, spelling: str
) -> None:
    store.add([VOTER.lower()], [], election="x", run_id="r", now=T0)
    g = guard_for(policies, store, tmp_path / "state", Clock())
    v = g.evaluate(Envelope("dmodele", SENDER, ("a@voisins.example", spelling)), message())
    assert v.drop == (spelling,), v
