"""The relay's adapter without Postfix: verdicts applied through fake milter
actions, the log filter, the hold-queue listing and the confirmation's sendmail
call (tests/integration/test_mail_guard.py runs the real Postfix)."""

from __future__ import annotations

import json
import os
import stat
import sys
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from isoloir.mailguard import cli, lookup, maillog, milter, unsubscribe
from isoloir.mailguard.guard import Verdict
from isoloir.policy import load_policies

REPO = Path(__file__).resolve().parents[2]


class FakeCtx:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def setreply(self, rcode: str, xcode: str | None, msg: str, *more: str) -> None:
        self.calls.append(("setreply", rcode, xcode, msg, *more))

    def delrcpt(self, rcpt: str) -> None:
        self.calls.append(("delrcpt", rcpt))

    def addheader(self, field: str, value: str, idx: int = -1) -> None:
        self.calls.append(("addheader", field, value))

    def chgheader(self, field: str, idx: int, value: str | None) -> None:
        self.calls.append(("chgheader", field, idx, value))

    def replacebody(self, body: bytes) -> None:
        self.calls.append(("replacebody", body))

    def quarantine(self, reason: str) -> None:
        self.calls.append(("quarantine", reason))


def collected(*rcpts: str) -> milter.Collected:
    c = milter.Collected(login="dmodele", mail_from="<dmodele@parti.example>")
    c.recipients.extend(rcpts)
    c.add_header("From", b"dmodele@parti.example")
    c.add_header("X-Isoloir-Election", b"exempleville-2027")
    c.add_header("Subject", b"Une ligne\n\tpliee")
    c.add_header("X-Isoloir-Election", b"autre")
    c.body.append(b"Bonjour\r\n")
    return c


def verdict(action: str, **kw: Any) -> Verdict:
    fields: dict[str, Any] = {"rule": "r", "smtp_code": 550, "smtp_status": "5.7.1", "text": "t"}
    fields.update(kw)
    return Verdict(action, **fields)


def test_reject_replies_with_the_verdict_text_and_doubles_percent() -> None:
    ctx = FakeCtx()
    code, dropped = milter.apply(
        verdict("reject", text="Refuse a 100% / Refused at 100%"), collected("<a@x.example>"), ctx
    )
    assert (code, dropped) == (milter.REJECT, 0)
    assert ctx.calls == [("setreply", "550", "5.7.1", "Refuse a 100%% / Refused at 100%%")]


def test_a_4xx_verdict_defers() -> None:
    ctx = FakeCtx()
    code, _ = milter.apply(
        verdict("reject", smtp_code=451, smtp_status="4.3.0"), collected("<a@x.example>"), ctx
    )
    assert code == milter.TEMPFAIL


def test_dropped_recipients_deleted_in_the_form_postfix_sent_them() -> None:
    ctx = FakeCtx()
    c = collected("<Voter.A@X.example>", "<b@x.example>")
    code, dropped = milter.apply(verdict("accept", drop=("voter.a@x.example",)), c, ctx)
    assert (code, dropped) == (milter.ACCEPT, 1)
    assert ("delrcpt", "<Voter.A@X.example>") in ctx.calls
    assert not [c for c in ctx.calls if c[0] == "delrcpt" and "b@" in c[1]]


def test_every_recipient_dropped_discards_the_message() -> None:
    ctx = FakeCtx()
    code, dropped = milter.apply(
        verdict("accept", drop=("a@x.example",)), collected("<a@x.example>"), ctx
    )
    assert (code, dropped) == (milter.DISCARD, 1)


def test_headers_removed_last_first_then_added_and_body_replaced_in_chunks() -> None:
    ctx = FakeCtx()
    body = b"x" * (milter.BODY_CHUNK + 10)
    v = verdict(
        "accept",
        remove_headers=("X-Isoloir-Election",),
        add_headers=(("List-Unsubscribe", "<mailto:stop@parti.example>"),),
        new_body=body,
    )
    code, _ = milter.apply(v, collected("<a@x.example>"), ctx)
    assert code == milter.ACCEPT
    names = [c[0] for c in ctx.calls]
    assert names == ["chgheader", "chgheader", "addheader", "replacebody", "replacebody"]
    assert ctx.calls[0] == ("chgheader", "X-Isoloir-Election", 2, None)
    assert ctx.calls[1] == ("chgheader", "X-Isoloir-Election", 1, None)
    assert b"".join(c[1] for c in ctx.calls if c[0] == "replacebody") == body


def test_hold_quarantines_and_unsubscribe_discards() -> None:
    ctx = FakeCtx()
    code, _ = milter.apply(verdict("hold", text="Message retenu"), collected("<a@x.example>"), ctx)
    assert code == milter.ACCEPT and ctx.calls == [("quarantine", "Message retenu")]
    code, _ = milter.apply(verdict("unsubscribe"), collected("<stop@x.example>"), FakeCtx())
    assert code == milter.DISCARD


def test_the_collected_message_is_crlf_with_folded_headers_kept() -> None:
    raw = collected("<a@x.example>").message()
    assert b"Subject: Une ligne\r\n\tpliee\r\n" in raw and raw.endswith(b"\r\n\r\nBonjour\r\n")
    msg = message_from_bytes(raw, policy=default_policy)
    assert msg["Subject"] == "Une ligne\tpliee"  # unfolded: the CRLF goes, the tab stays


def test_the_log_line_holds_counts_and_never_an_address() -> None:
    c = collected("<a@x.example>", "<b@x.example>")
    v = verdict("accept", drop=("a@x.example",), counts={"recipients": 2, "dropped": 1})
    line = milter.log_line(v, c, 1, "4AB12C")
    data = json.loads(line)
    assert data["recipients"] == 2 and data["dropped"] == 1 and data["queue_id"] == "4AB12C"
    assert "@" not in line and "dmodele" not in line


def test_reply_lines_are_bounded() -> None:
    lines = milter.reply_lines("mot " * 400)
    assert all(len(line) <= milter.MAX_REPLY_LINE for line in lines) and len(lines) > 1


@pytest.mark.parametrize(
    "socket", ["unix:relative.sock", "inet:8890@0.0.0.0", "inet:8890@192.0.2.1", "tcp:1"]
)
def test_the_milter_socket_is_a_unix_path_or_loopback(socket: str) -> None:
    with pytest.raises(ValueError, match="loopback only"):
        milter.check_socket(socket)
    milter.check_socket("unix:/var/spool/postfix/isoloir-mailguard/milter.sock")
    milter.check_socket("inet:8890@127.0.0.1")


def test_the_log_filter_removes_every_address() -> None:
    line = (
        b"<22>postfix/smtp[1]: 4AB: to=<Electeur.A@voters.example>, orig_to=<x+y@b.example>,"
        b" relay=127.0.0.1[127.0.0.1]:2525, status=sent (250 <z@c.example> ok)"
    )
    out = maillog.redact(line)
    assert b"@" not in out.replace(b"[redacted]", b"")
    assert b"relay=127.0.0.1[127.0.0.1]:2525" in out and out.startswith(b"<22>postfix/smtp[1]")


def fake_tool(path: Path, script: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{script}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_held_lists_the_hold_queue_without_addresses(tmp_path: Path) -> None:
    entries = [
        {"queue_name": "hold", "queue_id": "4AB12C", "arrival_time": 1, "message_size": 900,
         "sender": "a@x.example", "recipients": [{"address": "b@x.example"}]},
        {"queue_name": "deferred", "queue_id": "5CD", "arrival_time": 2, "message_size": 10,
         "sender": "c@x.example", "recipients": []},
    ]  # fmt: skip
    lines = "\\n".join(json.dumps(e) for e in entries)
    tool = fake_tool(
        tmp_path / "postqueue", f'print("{lines.replace(chr(34), chr(92) + chr(34))}")\n'
    )
    held = cli.held_messages(str(tool))
    assert held == [{"queue_id": "4AB12C", "arrival_time": 1, "size": 900, "recipients": 1}]
    assert "@" not in json.dumps(held)


def test_a_bad_queue_id_is_refused() -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["release", "../etc"])
    assert exited.value.code == 2


def test_the_confirmation_goes_to_sendmail_with_no_address_on_its_command_line(
    tmp_path: Path,
) -> None:
    record = tmp_path / "sendmail.json"
    tool = fake_tool(
        tmp_path / "sendmail",
        "import json, sys\n"
        "data = {'argv': sys.argv[1:], 'stdin': sys.stdin.read()}\n"
        f"json.dump(data, open({str(record)!r}, 'w'))\n",
    )
    policies = load_policies(REPO / "policies")
    unsub = policies.baseline.organisation.unsubscribe
    state = tmp_path / "state"
    now = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
    key = os.urandom(32)
    (state / "mailguard").mkdir(parents=True)
    lookup.export(state, key)  # the agents' copy of the suppression list (empty)
    run = milter.Runtime(
        policies, state, key, sendmail=[str(tool)], clock=lambda: now, authserv_id="relais.example"
    )
    c = milter.Collected(login=None, mail_from="<Electeur.Stop@voters.example>")
    c.recipients.append(f"<{unsub}>")
    c.add_header(
        "Authentication-Results",
        b"relais.example; spf=pass smtp.mailfrom=electeur.stop@voters.example",
    )
    c.add_header("From", b"Electeur.Stop@voters.example")
    c.add_header("To", unsub.encode())
    c.add_header("Subject", b"STOP")
    c.body.append(b"STOP\r\n")
    ctx = FakeCtx()
    assert milter.process(run, c, ctx, "4AB12C") == milter.DISCARD
    sent = json.loads(record.read_text())
    assert "-t" in sent["argv"] and not any("@" in a for a in sent["argv"])
    assert "To: electeur.stop@voters.example" in sent["stdin"]
    digest = run.suppression().digest("email", "electeur.stop@voters.example")
    with unsubscribe.MailOptOuts(unsubscribe.optouts_path(state)) as optouts:
        assert optouts.contains(digest)
    assert not run.suppression().contains("electeur.stop@voters.example", None)


def _unsubscribe_runtime(tmp_path: Path, exit_code: int) -> tuple[milter.Runtime, Path]:
    """A runtime whose sendmail appends each message it is given, then exits `exit_code`."""
    record = tmp_path / "sent.jsonl"
    tool = fake_tool(
        tmp_path / "sendmail",
        "import json, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps(sys.stdin.read()) + '\\n')\n"
        f"sys.exit({exit_code})\n",
    )
    policies = load_policies(REPO / "policies")
    state = tmp_path / "state"
    now = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
    key = os.urandom(32)
    (state / "mailguard").mkdir(parents=True)
    lookup.export(state, key)
    run = milter.Runtime(
        policies, state, key, sendmail=[str(tool)], clock=lambda: now, authserv_id="relais.example"
    )
    return run, record


def _to_unsubscribe(run: milter.Runtime, subject: bytes, body: bytes) -> milter.Collected:
    unsub = run.policies.baseline.organisation.unsubscribe
    c = milter.Collected(login=None, mail_from="<electeur.droits@voters.example>")
    c.recipients.append(f"<{unsub}>")
    c.add_header(
        "Authentication-Results",
        b"relais.example; spf=pass smtp.mailfrom=electeur.droits@voters.example",
    )
    c.add_header("From", b"electeur.droits@voters.example")
    c.add_header("To", unsub.encode())
    c.add_header("Subject", subject)
    c.body.append(body)
    return c


def _sent(record: Path) -> list[Any]:
    if not record.exists():
        return []
    return [
        message_from_bytes(json.loads(line).encode(), policy=default_policy)
        for line in record.read_text().splitlines()
    ]


def test_a_request_to_the_unsubscribe_address_reaches_the_dpo(tmp_path: Path) -> None:
    """Review E2: an erasure request written to the unsubscribe address is no longer
    thrown away; the DPO gets it whole, the voter is told, the opt-out is recorded."""
    run, record = _unsubscribe_runtime(tmp_path, 0)
    body = b"Bonjour,\r\nje demande l'effacement de toutes mes donnees, telephone compris.\r\n"
    ctx = FakeCtx()
    code = milter.process(run, _to_unsubscribe(run, b"Mes donnees", body), ctx, "4AB12D")
    assert code == milter.DISCARD
    copy, confirmation = _sent(record)
    org = run.policies.baseline.organisation
    assert (copy["To"], copy["From"]) == (org.dpo_contact, org.unsubscribe)
    assert copy["Reply-To"] == "electeur.droits@voters.example"
    attached = next(p for p in copy.iter_attachments() if p.get_content_type() == "message/rfc822")
    original = attached.get_content()
    assert "je demande l'effacement" in original.get_content()
    assert original["Subject"] == "Mes donnees"
    assert confirmation["To"] == "electeur.droits@voters.example"
    assert "transmis à notre délégué à la protection des données" in confirmation.get_content()
    digest = run.suppression().digest("email", "electeur.droits@voters.example")
    with unsubscribe.MailOptOuts(unsubscribe.optouts_path(run.state_dir)) as optouts:
        assert optouts.contains(digest)


def test_a_plain_opt_out_goes_nowhere_but_the_record(tmp_path: Path) -> None:
    run, record = _unsubscribe_runtime(tmp_path, 0)
    body = b"STOP\r\n\r\nLe 9 janv. 2027, Mouvement Exemple a ecrit :\r\n> Venez a la reunion\r\n"
    ctx = FakeCtx()
    assert milter.process(run, _to_unsubscribe(run, b"unsubscribe", body), ctx, "1") == (
        milter.DISCARD
    )
    (confirmation,) = _sent(record)  # the confirmation only, no copy for the DPO
    assert confirmation["To"] == "electeur.droits@voters.example"
    assert "délégué" not in confirmation.get_content()


def test_the_dpo_copy_not_sent_defers_the_request(tmp_path: Path) -> None:
    run, record = _unsubscribe_runtime(tmp_path, 1)
    ctx = FakeCtx()
    c = _to_unsubscribe(run, b"Acces", b"Quelles donnees avez-vous sur moi ?\r\n")
    assert milter.process(run, c, ctx, "2") == milter.TEMPFAIL
    assert ctx.calls[0][:3] == ("setreply", "451", "4.3.0")
    assert len(_sent(record)) == 1  # the copy was tried; nothing else was sent


@pytest.mark.parametrize(
    ("subject", "body", "plain"),
    [
        ("unsubscribe", "", True),
        ("STOP", "Merci de ne plus m'écrire.", True),
        (
            "Désinscription",
            "Je ne veux plus recevoir vos messages.\n-- \nJean, 06 00 00 00 00",
            True,
        ),
        ("STOP", "Supprimez aussi mon numéro de téléphone.", False),
        ("Question", "Comment avez-vous eu mon adresse ?", False),
        ("RGPD", "Je demande une copie de mes données.", False),
        ("stop", "Je vais saisir la CNIL.", False),
        ("Unsubscribe", "Please delete my data.", False),
        ("stop", " ".join(["mot"] * 40), False),
    ],
)
def test_what_counts_as_a_plain_opt_out(subject: str, body: str, plain: bool) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = subject
    msg.set_content(body + "\n")
    assert unsubscribe.is_plain_optout(msg) is plain


def test_an_attachment_is_never_a_plain_opt_out() -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["Subject"] = "STOP"
    msg.set_content("STOP\n")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="id.pdf")
    assert not unsubscribe.is_plain_optout(msg)


def test_the_local_target_relays_to_its_sink_never_to_an_mx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from isoloir.controller import deploy, inventory

    monkeypatch.setattr(inventory, "build_wheelhouse", lambda out: out)
    d = deploy.Deployment(
        target="local", policies_dir=REPO / "policies", run_dir=tmp_path, out=lambda _: None
    )
    d.step_policies()
    d.env = {
        "ISOLOIR_AWS_ENDPOINT": "https://127.0.0.1:4566",
        "AWS_CA_BUNDLE": str(tmp_path / "ca.pem"),
        "AWS_ACCESS_KEY_ID": "fictif",
        "AWS_SECRET_ACCESS_KEY": "fictif",
        "AWS_DEFAULT_REGION": "eu-west-3",
        "ISOLOIR_SMTP_SINK": "127.0.0.1:2525",
        "ISOLOIR_WEBHOOK_SINK": "127.0.0.1:2526",
    }
    extra = json.loads(d._extra_vars().read_text())
    assert extra["mail_guard_relayhost"] == "[127.0.0.1]:2525"
    assert extra["mail_guard_upstream_tls_level"] == "may"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "--socket", "inet:8890@0.0.0.0"], "loopback only"),
        (["serve", "--socket", "unix:/tmp/x.sock", "--config", "/nonexistent/agent.json"], "agent"),
    ],
)
def test_serve_refuses_in_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main([*argv, "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and len(err.strip().splitlines()) == 1
