"""The campaign mail relay on the converged sandbox host (issue 15).

Real Postfix (submission with STARTTLS + SASL through saslauthd and PAM, port
25 for the unsubscribe address), the guard as its milter under systemd, a real
SMTP client (smtplib) on this machine and the session's aiosmtpd sink as the
upstream (`mail_sink`, tests/plugins/hosts.py). Every address is fiction
(@*.example); each one the test uses is looked for in the host's logs at the end.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import secrets
import smtplib
import sqlite3
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from tests.plugins.hosts import ELECTION_A, MEMBER_A, MEMBER_B, Site

from isoloir.controller.sink import received
from isoloir.findings import Severity
from isoloir.mailguard.held import held_findings

pytestmark = [pytest.mark.integration, pytest.mark.root]

PARTY = "mouvement-exemple.example"
VOTERS = "electeurs-relais.example"
NOT_MEMBER = "bexemple"  # in the policies' people, member of no election
INTRUDER = "intrus"  # a Unix account outside the party's people
CERT = "etc/postfix/isoloir-tls/cert.pem"
VENV = "/opt/isoloir/venv/bin/isoloir"
DEADLINE = 60.0
# Every recipient address the tests use; none may appear in a log.
USED: set[str] = set()


def voter(name: str) -> str:
    address = f"{name}@{VOTERS}"
    USED.add(address)
    return address


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Outcome:
    code: int
    text: str
    queue_id: str = ""

    @property
    def accepted(self) -> bool:
        return self.code == 250


@dataclass
class Relay:
    site: Site
    address: str
    context: ssl.SSLContext
    passwords: dict[str, str]
    unsubscribe: str
    addresses: dict[str, str]  # login -> the person's policy address (the only sender)
    dpo: str

    def submit(
        self,
        login: str | None,
        msg: EmailMessage,
        rcpts: list[str],
        *,
        port: int = 587,
        password: str | None = None,
    ) -> Outcome:
        """One message through the relay; the first refusal, or 250 and the queue id."""
        try:
            return self._submit(login, msg, rcpts, port=port, password=password)
        except smtplib.SMTPResponseException as exc:
            return Outcome(exc.smtp_code, exc.smtp_error.decode())

    def _submit(
        self,
        login: str | None,
        msg: EmailMessage,
        rcpts: list[str],
        *,
        port: int,
        password: str | None,
    ) -> Outcome:
        with smtplib.SMTP(self.address, port, timeout=60) as client:
            client.ehlo("client.example")
            if port == 587:
                client.starttls(context=self.context)
                client.ehlo("client.example")
            if login is not None:
                client.login(login, password or self.passwords[login])
            sender = email.utils.parseaddr(str(msg["From"]))[1]
            code, text = client.mail(sender)
            if code != 250:
                return Outcome(code, text.decode())
            for rcpt in rcpts:
                code, text = client.rcpt(rcpt)
                if code not in (250, 251):
                    return Outcome(code, text.decode())
            code, text = client.data(msg.as_bytes(policy=email.policy.SMTP))
            found = re.search(r"queued as (\w+)", text.decode())
            return Outcome(code, text.decode(), found.group(1) if found else "")

    def delivered(self, marker: str) -> dict[str, EmailMessage]:
        """What the sink holds for the message whose subject holds `marker`, per recipient."""
        sink = self.site.mail_sink
        assert sink is not None
        return received(sink.maildir, marker)

    def host(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.site.host.chroot(*argv, check=check, timeout=120)

    def held(self) -> list[dict[str, object]]:
        run = self.host(VENV, "mailguard", "held", "--format", "json")
        return list(json.loads(run.stdout))


def password() -> str:
    return "Rel-" + secrets.token_urlsafe(12) + "9a"


@pytest.fixture(scope="module")
def relay(site: Site) -> Iterator[Relay]:
    assert site.runs and site.runs[0].returncode == 0, site.runs[0].stdout[-3000:]
    assert site.mail_sink is not None
    pwds = {p: password() for p in (MEMBER_A, MEMBER_B, NOT_MEMBER)}
    for person, pwd in pwds.items():
        site.host.set_password(person, pwd)
    context = ssl.create_default_context(cafile=str(site.host.root / CERT))
    context.check_hostname = False  # a self-signed certificate, pinned as the only CA
    rendered = json.loads((site.render / "agent" / "agent.json").read_text())
    baseline = rendered["baseline"]
    yield Relay(
        site,
        site.host.address,
        context,
        pwds,
        baseline["organisation"]["unsubscribe"],
        {p["id"]: p["email"] for p in baseline["people"]},
        baseline["organisation"]["dpo_contact"],
    )
    for person in pwds:
        site.host.chroot("faillock", "--user", person, "--reset", check=False)


def campaign(sender: str, subject: str, relay: Relay, *, notice: bool = True) -> EmailMessage:
    """A campaign message from `sender`; with the transparency notice and List-Unsubscribe."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["Subject"] = subject
    body = "Bonjour,\nVenez à la réunion publique jeudi.\n"
    if notice:
        msg["List-Unsubscribe"] = f"<mailto:{relay.unsubscribe}>"
        body += (
            "\n--\nMessage de Mouvement Exemple pour l'élection Municipale d'Exempleville 2027 "
            f"({ELECTION_A}). Votre adresse vient du formulaire où vous avez accepté d'être "
            f"contacté(e). Désinscription : {relay.unsubscribe}. DPO : {relay.dpo}. "
            "Réclamation auprès de la CNIL : www.cnil.fr\n"
        )
    msg.set_content(body)
    return msg


def mark() -> str:
    return uuid.uuid4().hex[:12]


# -- the relay itself -----------------------------------------------------------------


def test_relay_listens_on_the_host_address_only_and_fails_closed(relay: Relay) -> None:
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    for port in (25, 587):
        mine = [
            ln.split()[3] for ln in listening.splitlines() if ln.split()[3].endswith(f":{port}")
        ]
        assert f"{relay.address}:{port}" in mine
        assert f"0.0.0.0:{port}" not in mine and f"*:{port}" not in mine

    def postconf(name: str) -> str:
        return relay.host("postconf", "-h", name).stdout.strip()

    assert postconf("mynetworks") == ""  # nothing trusted by its address
    assert postconf("milter_default_action") == "tempfail"
    assert postconf("smtpd_milters") == "unix:/isoloir-mailguard/milter.sock"
    assert postconf("non_smtpd_milters") == ""
    assert postconf("authorized_submit_users") == "root, isoloir-mail"
    sink = relay.site.mail_sink
    assert sink is not None and postconf("relayhost") == f"[127.0.0.1]:{sink.port}"
    unit = relay.host("systemd-analyze", "verify", "/etc/systemd/system/isoloir-mailguard.service")
    assert unit.stderr.strip() == "", unit.stderr
    state = relay.host("systemctl", "is-active", "isoloir-mailguard.service").stdout.strip()
    assert state == "active"


def test_submission_needs_starttls_and_a_member_of_the_party(relay: Relay) -> None:
    with smtplib.SMTP(relay.address, 587, timeout=60) as client:
        client.ehlo("client.example")
        assert not client.has_extn("auth"), "AUTH offered before STARTTLS"
        code, _ = client.mail(relay.addresses[MEMBER_A])
        assert code == 530  # 5.7.0 Must issue a STARTTLS command first
    with smtplib.SMTP(relay.address, 587, timeout=60) as client:
        client.starttls(context=relay.context)
        client.ehlo("client.example")
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        client.mail(relay.addresses[MEMBER_A])
        code, _ = client.rcpt(voter("sans-auth"))
        assert code == 554  # no relay without authentication
    pwd = password()
    relay.host("useradd", "--create-home", INTRUDER)
    relay.site.host.set_password(INTRUDER, pwd)
    try:
        for login, secret in ((INTRUDER, pwd), (MEMBER_A, relay.passwords[MEMBER_A] + "x")):
            with smtplib.SMTP(relay.address, 587, timeout=60) as client:
                client.starttls(context=relay.context)
                with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                    client.login(login, secret)
                assert refused.value.smtp_code == 535
    finally:
        relay.host("userdel", "--remove", INTRUDER, check=False)
        relay.host("faillock", "--user", MEMBER_A, "--reset", check=False)


def test_port_25_takes_the_unsubscribe_address_only(relay: Relay) -> None:
    with smtplib.SMTP(relay.address, 25, timeout=60) as client:
        client.ehlo("voter.example")
        assert not client.has_extn("auth")
        client.mail(voter("curieux"))
        code, text = client.rcpt(voter("autre"))
        assert code == 554 and b"Access denied" in text
        code, _ = client.rcpt(relay.unsubscribe)
        assert code == 250


# -- rule 1: visible recipients; rule 4: the sender's election ------------------------


def test_rule1_visible_recipients_refused_then_bcc_twin_delivered(relay: Relay) -> None:
    tag = mark()
    rcpts = [voter(f"r1-{tag}-{i}") for i in range(6)]
    bad = campaign(relay.addresses[MEMBER_A], f"Réunion {tag} A", relay)
    bad["To"] = ", ".join(rcpts)
    refused = relay.submit(MEMBER_A, bad, rcpts)
    assert refused.code == 550
    assert "mettez les destinataires en Cci" in refused.text
    assert "put the recipients in Bcc" in refused.text
    good = campaign(relay.addresses[MEMBER_A], f"Réunion {tag} B", relay)
    good["To"] = relay.addresses[MEMBER_A]
    sent = relay.submit(MEMBER_A, good, rcpts)
    assert sent.accepted, sent.text
    wait_for(lambda: len(relay.delivered(f"{tag} B")) == 6, "the Bcc twin at the sink")
    assert relay.delivered(f"{tag} A") == {}
    delivered = relay.delivered(f"{tag} B")
    assert set(delivered) == set(rcpts)
    # The relay adds no address: the Bcc recipients stay invisible.
    one = next(iter(delivered.values()))
    assert "Bcc" not in one and all(r not in str(one["To"]) for r in rcpts)


def test_rule4_sender_must_belong_to_an_active_election(relay: Relay) -> None:
    tag = mark()
    rcpt = [voter(f"r4-{tag}")]
    outsider = campaign(relay.addresses[NOT_MEMBER], f"Hors élection {tag}", relay)
    refused = relay.submit(NOT_MEMBER, outsider, rcpt)
    assert refused.code == 550 and "not a member of any election" in refused.text
    other_team = campaign(relay.addresses[MEMBER_B], f"Autre équipe {tag}", relay)
    other_team["X-Isoloir-Election"] = ELECTION_A
    refused = relay.submit(MEMBER_B, other_team, rcpt)
    assert refused.code == 550 and "one team cannot send for another" in refused.text
    own = campaign(relay.addresses[MEMBER_A], f"Bonne équipe {tag}", relay)
    own["X-Isoloir-Election"] = ELECTION_A
    assert relay.submit(MEMBER_A, own, rcpt).accepted
    wait_for(lambda: set(relay.delivered(f"équipe {tag}")) == set(rcpt), "the good twin")
    assert "X-Isoloir-Election" not in relay.delivered(f"Bonne équipe {tag}")[rcpt[0]]
    assert relay.delivered(f"Hors élection {tag}") == {}


# -- rule 2: the transparency notice --------------------------------------------------


def test_rule2_bulk_without_notice_refused_then_twin_with_notice_delivered(relay: Relay) -> None:
    tag = mark()
    rcpts = [voter(f"r2-{tag}-{i}") for i in range(7)]
    bare = campaign(relay.addresses[MEMBER_A], f"Tract {tag} A", relay, notice=False)
    bare["To"] = relay.addresses[MEMBER_A]
    refused = relay.submit(MEMBER_A, bare, rcpts)
    assert refused.code == 550
    assert "List-Unsubscribe" in refused.text and "Bulk message without" in refused.text
    assert "Envoi groupe sans" in refused.text
    good = campaign(relay.addresses[MEMBER_A], f"Tract {tag} B", relay)
    good["To"] = relay.addresses[MEMBER_A]
    assert relay.submit(MEMBER_A, good, rcpts).accepted
    wait_for(lambda: len(relay.delivered(f"{tag} B")) == 7, "the twin with the notice")
    assert relay.delivered(f"{tag} A") == {}


def test_a_message_to_one_voter_gets_the_complete_notice_and_list_unsubscribe(
    relay: Relay,
) -> None:
    """A mailer sending one message per voter (review E4): the relay adds the
    complete notice (E3) and List-Unsubscribe to each, in reject mode too."""
    tag = mark()
    one = voter(f"one-{tag}")
    msg = campaign(relay.addresses[MEMBER_A], f"Perso {tag}", relay, notice=False)
    msg["To"] = one
    sent = relay.submit(MEMBER_A, msg, [one])
    assert sent.accepted, sent.text
    wait_for(lambda: one in relay.delivered(f"Perso {tag}"), "the one-recipient message")
    got = relay.delivered(f"Perso {tag}")[one]
    assert f"mailto:{relay.unsubscribe}" in str(got["List-Unsubscribe"])
    body = got.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert text.startswith("Bonjour,\nVenez à la réunion publique jeudi.")
    for item in (
        f"Pour ne plus recevoir nos messages, écrivez à {relay.unsubscribe}",
        "responsable du traitement, pour : ",
        "Finalité : communication politique pour cette élection. Base légale : ",
        "Origine de votre adresse : ",
        "Conservation : jusqu'au ",
        # compliance review E7: kept with consent is not kept forever
        "jusqu'à la fin de nos échanges ou de votre adhésion, avec un réexamen ",
        f"Délégué à la protection des données : {relay.dpo}",
        "accès, rectification, effacement, limitation, opposition",
        "réclamation auprès de la CNIL (www.cnil.fr)",
    ):
        assert item in text, item
    assert "liste électorale" not in text
    # a message inside the party is left as it was
    inside = campaign(relay.addresses[MEMBER_A], f"Interne {tag}", relay, notice=False)
    inside["To"] = relay.addresses[MEMBER_B]
    assert relay.submit(MEMBER_A, inside, [relay.addresses[MEMBER_B]]).accepted
    wait_for(lambda: len(relay.delivered(f"Interne {tag}")) == 1, "the internal message")
    internal = next(iter(relay.delivered(f"Interne {tag}").values()))
    assert internal["List-Unsubscribe"] is None and relay.dpo not in internal.get_content()


# -- rule 3: suppressed recipients; unsubscribing during the campaign -----------------


def test_rule3_unsubscribed_voters_never_reach_the_sink_in_to_cc_or_bcc(relay: Relay) -> None:
    tag = mark()
    by_mail = voter(f"stop-mail-{tag}")
    by_export, by_export_too = voter(f"stop-sms-{tag}"), voter(f"stop-form-{tag}")
    # A voter writes to the unsubscribe address (port 25, no authentication).
    note = EmailMessage()
    note["From"] = by_mail
    note["To"] = relay.unsubscribe
    note["Subject"] = f"STOP {tag}"
    note.set_content("Merci de ne plus m'écrire.\n")
    entries_before = optouts(relay)
    unsubscribed = relay.submit(None, note, [relay.unsubscribe], port=25)
    assert unsubscribed.accepted, unsubscribed.text
    # Recorded as a mail opt-out in the guard's own record, never in the suppression
    # list (N2): MAIL FROM is not authenticated here. No trusted SPF/DKIM result,
    # so no confirmation goes to that (possibly forged) sender.
    assert optouts(relay) == entries_before + 1
    assert relay.unsubscribe not in relay.delivered(f"STOP {tag}")
    # A STOP export and a web form's CSV, added with `isoloir suppression add`; the
    # guard's copy of the list follows it (isoloir-mailguard-sync.path).
    exported = relay.site.host.root / "var/lib/isoloir/mailguard/suppressed.sqlite"
    copy_before = exported.stat().st_ino
    export = relay.site.host.root / "var/lib/isoloir/tmp" / f"stop-{tag}.csv"
    export.write_text(f"email;telephone\n{by_export};06 39 98 00 11\n{by_export_too};\n")
    relay.host("chown", "isoloir:isoloir", f"/var/lib/isoloir/tmp/{export.name}")
    added = relay.host(
        "runuser", "-u", "isoloir", "--", VENV, "suppression", "add", "--file",
        f"/var/lib/isoloir/tmp/{export.name}",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    export.unlink()
    wait_for(lambda: exported.stat().st_ino != copy_before, "the guard's new copy", 70)
    # The very next campaign message: one of them in To, one in Cc, one in Bcc, one
    # spelled with a quoted local part (N7).
    others = [voter(f"r3-{tag}-{i}") for i in range(4)]
    msg = campaign(relay.addresses[MEMBER_A], f"Meeting {tag}", relay)
    msg["To"] = by_mail
    msg["Cc"] = by_export
    local, _, domain = by_export_too.partition("@")
    rcpts = [by_mail, by_export, f'"{local}"@{domain}', *others]
    sent = relay.submit(MEMBER_A, msg, rcpts)
    assert sent.accepted, sent.text
    wait_for(lambda: len(relay.delivered(f"Meeting {tag}")) == 4, "the campaign message")
    assert set(relay.delivered(f"Meeting {tag}")) == set(others)
    # Everyone suppressed: nothing at all leaves.
    alone = campaign(relay.addresses[MEMBER_A], f"Seuls {tag}", relay)
    alone["To"] = by_mail
    assert relay.submit(MEMBER_A, alone, [by_mail, by_export]).accepted
    # `suppression filter` honours the same export.
    table = relay.site.host.root / "var/lib/isoloir/tmp" / f"prospects-{tag}.csv"
    table.write_text(f"nom;email\nA;{by_export}\nB;{others[0]}\n")
    relay.host("chown", "isoloir:isoloir", f"/var/lib/isoloir/tmp/{table.name}")
    # The list holds numbers too (the SMS STOP and phone opt-outs of the other
    # tests): a file of addresses only is matched on them when named (CLI N2).
    filtered = relay.host(
        "runuser", "-u", "isoloir", "--", VENV, "suppression", "filter",
        f"/var/lib/isoloir/tmp/{table.name}", "-o", f"/var/lib/isoloir/tmp/{table.name}.out",
        "--email-column", "email", check=False,
    )  # fmt: skip
    out = table.with_name(table.name + ".out")
    try:
        assert filtered.returncode == 0, filtered.stderr
        assert by_export not in out.read_text() and others[0] in out.read_text()
    finally:
        table.unlink()
        out.unlink(missing_ok=True)
    time.sleep(2)
    assert relay.delivered(f"Seuls {tag}") == {}


def test_a_request_to_the_unsubscribe_address_reaches_the_dpo(relay: Relay) -> None:
    """Review E2: an erasure request written to the unsubscribe address is not
    thrown away: the sender is recorded as an opt-out and the DPO gets the
    message, attached whole; a plain STOP goes nowhere but the record."""
    tag = mark()
    asker, stopper = voter(f"droits-{tag}"), voter(f"stop-{tag}")
    request = EmailMessage()
    request["From"], request["To"] = asker, relay.unsubscribe
    request["Subject"] = f"Effacement {tag}"
    request.set_content("Bonjour,\nje demande l'effacement de mes données, téléphone compris.\n")
    before = optouts(relay)
    assert relay.submit(None, request, [relay.unsubscribe], port=25).accepted
    wait_for(lambda: relay.dpo in relay.delivered(f"Effacement {tag}"), "the DPO's copy")
    copy = relay.delivered(f"Effacement {tag}")[relay.dpo]
    assert copy["From"] == relay.unsubscribe and copy["Reply-To"] == asker
    (attached,) = [p for p in copy.iter_attachments() if p.get_content_type() == "message/rfc822"]
    original = attached.get_content()
    assert "je demande l'effacement de mes données" in original.get_content()
    assert optouts(relay) == before + 1
    stop = EmailMessage()
    stop["From"], stop["To"], stop["Subject"] = stopper, relay.unsubscribe, f"STOP {tag}"
    stop.set_content("STOP\n")
    assert relay.submit(None, stop, [relay.unsubscribe], port=25).accepted
    wait_for(lambda: optouts(relay) == before + 2, "the plain opt-out's record")
    time.sleep(3)
    assert relay.delivered(f"STOP {tag}") == {}


def optouts(relay: Relay) -> int:
    """Mail opt-outs in the guard's own record (read as the agents' user would)."""
    path = relay.site.host.root / "var/lib/isoloir/mailguard/optouts.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM optouts").fetchone()[0])


# -- rule 5: a contact file leaving the party is held ---------------------------------


def contact_file(sender: str, subject: str, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Le fichier de la semaine.\n")
    rows = "".join(
        f"Fictif{i};Test;contact{i:02d}@fichier.example;06 39 98 00 {i:02d}\n" for i in range(30)
    )
    msg.add_attachment(
        ("nom;prenom;email;telephone\n" + rows).encode(),
        maintype="text",
        subtype="csv",
        filename="contacts.csv",
    )
    return msg


def test_rule5_contact_file_outside_is_held_then_released_or_deleted(relay: Relay) -> None:
    tag = mark()
    inside = relay.addresses[MEMBER_B]
    twin = relay.submit(
        MEMBER_A,
        contact_file(relay.addresses[MEMBER_A], f"Fichier {tag} interne", inside),
        [inside],
    )
    assert twin.accepted
    wait_for(lambda: inside in relay.delivered(f"Fichier {tag} interne"), "the inside twin")
    ids = []
    for n, who in enumerate((voter(f"r5-{tag}-a"), voter(f"r5-{tag}-b"))):
        out = relay.submit(
            MEMBER_A, contact_file(relay.addresses[MEMBER_A], f"Fichier {tag} {n}", who), [who]
        )
        assert out.accepted and out.queue_id, out.text
        ids.append(out.queue_id)
    held = {str(m["queue_id"]): m for m in relay.held()}
    assert set(ids) <= set(held)
    assert held[ids[0]]["recipients"] == 1
    # The scan job alerts on each held message (critical), counts and queue id only.
    state = relay.site.host.root / "var/lib/isoloir"
    alerts = {f.resource: f for f in held_findings(state, datetime.now(UTC))}
    assert {f"mail-hold/{i}" for i in ids} <= set(alerts)
    first = alerts[f"mail-hold/{ids[0]}"]
    assert first.severity == Severity.CRITICAL and first.evidence["recipients_outside"] == 1
    assert "@" not in json.dumps(first.to_dict())
    listing = relay.host(VENV, "mailguard", "held").stdout
    assert not re.search(r"@", listing), "the hold queue listing shows an address"
    time.sleep(2)
    assert relay.delivered(f"Fichier {tag} 0") == {} and relay.delivered(f"Fichier {tag} 1") == {}
    released = relay.host(VENV, "mailguard", "release", ids[0])
    assert released.returncode == 0, released.stderr
    wait_for(lambda: len(relay.delivered(f"Fichier {tag} 0")) == 1, "the released message")
    deleted = relay.host(VENV, "mailguard", "delete", ids[1])
    assert deleted.returncode == 0, deleted.stderr
    assert ids[1] not in {str(m["queue_id"]) for m in relay.held()}
    again = relay.host(VENV, "mailguard", "delete", ids[1], check=False)
    assert again.returncode == 2 and "not in the hold queue" in again.stderr
    assert relay.delivered(f"Fichier {tag} 1") == {}
    # Settled by release and delete: the next scan resolves both alerts.
    left = {f.resource for f in held_findings(state, datetime.now(UTC))}
    assert not left & {f"mail-hold/{i}" for i in ids}


def test_concurrent_connections_are_all_checked_and_delivered(relay: Relay) -> None:
    """libmilter calls the guard from its own threads: four clients at once."""
    tag = mark()

    def batch(n: int) -> list[str]:
        """Ten messages on one connection, as a mailing tool sends them."""
        refused = []
        with smtplib.SMTP(relay.address, 587, timeout=60) as client:
            client.starttls(context=relay.context)
            client.login(MEMBER_A, relay.passwords[MEMBER_A])
            for k in range(10):
                msg = campaign(relay.addresses[MEMBER_A], f"Parallèle {tag} {n}-{k}", relay)
                msg["To"] = relay.addresses[MEMBER_A]
                rcpts = [voter(f"par-{tag}-{n}-{k}-{i}") for i in range(3)]
                try:
                    client.send_message(msg, relay.addresses[MEMBER_A], rcpts)
                except smtplib.SMTPResponseException as exc:
                    refused.append(f"{exc.smtp_code} {exc.smtp_error.decode()[:80]}")
        return refused

    with ThreadPoolExecutor(4) as pool:
        refused = [r for batch_refused in pool.map(batch, range(4)) for r in batch_refused]
    assert refused == []
    wait_for(lambda: len(relay.delivered(f"Parallèle {tag}")) == 120, "the 40 messages")


# -- the guard apart from the agents (N1, N15), senders (N16), TLS, vCards, lock-out (N5) --


def status_ids(relay: Relay, pid: str) -> tuple[int, set[int]]:
    status = relay.host("cat", f"/proc/{pid}/status").stdout
    uid = int(re.search(r"(?m)^Uid:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    groups = re.search(r"(?m)^Groups:(.*)$", status).group(1).split()  # type: ignore[union-attr]
    return uid, {int(g) for g in groups}


def test_the_guard_runs_as_its_own_user_in_no_election_group(relay: Relay) -> None:
    pid = relay.host("systemctl", "show", "-p", "MainPID", "--value", "isoloir-mailguard").stdout
    pid = pid.strip()
    assert pid not in ("", "0")
    uid, groups = status_ids(relay, pid)

    def number(db: str, name: str) -> int:
        return int(relay.host("getent", db, name).stdout.split(":")[2])

    assert uid == number("passwd", "isoloir-mail") != number("passwd", "isoloir")
    election_groups = {
        int(line.split(":")[2])
        for line in relay.host("getent", "group").stdout.splitlines()
        if line.startswith("el-")
    }
    assert election_groups and not groups & election_groups
    assert number("group", "isoloir") not in groups
    # Its own group (initgroups lists it) and postdrop, for sendmail; nothing else.
    assert number("group", "postdrop") in groups
    assert groups <= {number("group", "postdrop"), number("group", "isoloir-mail")}
    # The metadata guard lets root and the agents' user through, not the guard.
    rule = (relay.site.host.root / "etc/isoloir-nft/metadata.nft").read_text()
    allowed = re.search(r"skuid != \{ ([0-9, ]+) \}", rule)
    assert allowed is not None and str(uid) not in allowed.group(1).replace(" ", "").split(",")
    # Of the agents' state the guard sees its own directory only; not their secrets.
    seen = relay.host("ls", "-A", f"/proc/{pid}/root/var/lib/isoloir").stdout.split()
    assert seen == ["mailguard"]
    hidden = relay.host("ls", f"/proc/{pid}/root/etc/isoloir/secrets", check=False)
    assert hidden.returncode != 0
    cannot = relay.host(
        "runuser", "-u", "isoloir-mail", "--", "cat", "/etc/isoloir/secrets/retention-signing.key",
        check=False,
    )  # fmt: skip
    assert cannot.returncode != 0 and "BEGIN" not in cannot.stdout
    props = relay.host(
        "systemctl", "show", "isoloir-mailguard", "-p", "IPAddressDeny", "-p", "IPAddressAllow",
        "-p", "MemoryMax", "-p", "TasksMax", "-p", "User",
    ).stdout  # fmt: skip
    shown = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
    # systemd prints the address sets in no fixed order.
    assert set(shown["IPAddressDeny"].split()) == {"0.0.0.0/0", "::/0"}
    assert set(shown["IPAddressAllow"].split()) == {"127.0.0.0/8", "::1/128"}
    assert f"MemoryMax={768 * 1024 * 1024}" in props and "TasksMax=256" in props
    assert "User=isoloir-mail" in props
    # The agents' user reads the guard's decision log and its opt-outs (one
    # decision first: the log is created by the first message the guard judges).
    assert relay.submit(MEMBER_A, campaign(relay.addresses[MEMBER_A], f"Trace {mark()}", relay),
                        [voter(f"trace-{mark()}")]).accepted  # fmt: skip
    log = "/var/lib/isoloir/mailguard/decisions.sqlite"
    read = relay.host("runuser", "-u", "isoloir", "--", "test", "-r", log)
    assert read.returncode == 0


def test_port_25_refuses_a_large_message(relay: Relay) -> None:
    note = EmailMessage()
    note["From"] = voter("gros-envoi")
    note["To"] = relay.unsubscribe
    note["Subject"] = "STOP"
    note.set_content("x" * 100_000)
    refused = relay.submit(None, note, [relay.unsubscribe], port=25)
    assert refused.code == 552, refused


def test_a_member_sends_only_as_themselves(relay: Relay) -> None:
    tag = mark()
    rcpt = [voter(f"n16-{tag}")]
    leader = relay.addresses["cfictive"]
    as_leader = campaign(leader, f"Au nom du chef {tag}", relay)
    refused = relay.submit(MEMBER_A, as_leader, rcpt)  # MAIL FROM the leader's address
    assert refused.code == 553 and "not owned by user" in refused.text, refused
    forged = campaign(relay.addresses[MEMBER_A], f"En-tete {tag}", relay)
    forged.replace_header("From", f"Chef <{leader}>")
    with smtplib.SMTP(relay.address, 587, timeout=60) as client:
        client.starttls(context=relay.context)
        client.login(MEMBER_A, relay.passwords[MEMBER_A])
        with pytest.raises(smtplib.SMTPDataError) as guard:
            client.send_message(forged, relay.addresses[MEMBER_A], rcpt)
    assert guard.value.smtp_code == 550 and b"own party address" in guard.value.smtp_error
    time.sleep(2)
    assert relay.delivered(f"chef {tag}") == {} and relay.delivered(f"En-tete {tag}") == {}


def s_client(relay: Relay, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"{relay.address}:587", "-starttls", "smtp",
         "-servername", "relay.example", *options],
        input="QUIT\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def negotiated(run: subprocess.CompletedProcess[str]) -> str:
    """The suite agreed on: the session block's "Cipher :", or for TLS 1.3 (whose
    session arrives after the handshake, often after QUIT) the "New, ..., Cipher is" line."""
    found = re.search(r"(?m)^\s*Cipher\s*:\s*(\S+)", run.stdout) or re.search(
        r"(?m)^New, \S+, Cipher is (\S+)", run.stdout
    )
    return found.group(1) if found and found.group(1) not in ("0000", "(NONE)") else ""


def test_submission_tls_offers_no_anonymous_no_cbc_and_its_own_order(relay: Relay) -> None:
    """What testssl checks on 587, with the machine's openssl (issue 22 item 7)."""
    good = s_client(relay, "-tls1_2")
    assert negotiated(good).startswith("ECDHE-") and "GCM" in negotiated(good), good.stdout
    for refused in (
        ("-tls1_2", "-cipher", "aNULL:@SECLEVEL=0"),  # anonymous suites
        ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-SHA"),
        ("-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"),
        ("-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"),
    ):
        run = s_client(relay, *refused)
        assert negotiated(run) == "", (refused, run.stdout[-800:])
    # The client prefers AES128: the server's order (AES256 first) wins.
    order = s_client(
        relay, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
    )
    assert negotiated(order) == "ECDHE-ECDSA-AES256-GCM-SHA384", order.stdout[-800:]
    tls13 = s_client(relay, "-tls1_3")
    assert negotiated(tls13).startswith("TLS_"), tls13.stdout[-800:]


def test_a_vcard_export_to_outside_the_party_is_held(relay: Relay) -> None:
    tag = mark()
    who = voter(f"vcf-{tag}")
    msg = EmailMessage()
    msg["From"] = relay.addresses[MEMBER_A]
    msg["To"] = who
    msg["Subject"] = f"Contacts du telephone {tag}"
    msg.set_content("Mes contacts.\n")
    cards = "".join(
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Contact Fictif {i}\r\n"
        f"TEL;TYPE=CELL:+3363998{i:04d}\r\nEMAIL:contact{i}@fichier.example\r\nEND:VCARD\r\n"
        for i in range(40)
    )
    msg.add_attachment(cards.encode(), maintype="text", subtype="vcard", filename="contacts.vcf")
    out = relay.submit(MEMBER_A, msg, [who])
    assert out.accepted and out.queue_id, out
    assert out.queue_id in {str(m["queue_id"]) for m in relay.held()}
    assert relay.host(VENV, "mailguard", "delete", out.queue_id).returncode == 0
    assert relay.delivered(f"telephone {tag}") == {}


def test_smtp_auth_failures_never_lock_ssh_and_sudo(relay: Relay) -> None:
    """N5: a member's failed AUTH attempts count in common-auth's tally, never in
    the one sshd and sudo check (the TOTP stack's own)."""
    try:
        for _ in range(4):
            with smtplib.SMTP(relay.address, 587, timeout=60) as client:
                client.starttls(context=relay.context)
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    client.login(MEMBER_B, "not-" + relay.passwords[MEMBER_B])
        common = relay.host("faillock", "--user", MEMBER_B).stdout
        totp = relay.host("faillock", "--dir", "/run/faillock-totp", "--user", MEMBER_B).stdout
        assert len(re.findall(r"(?m)^\d{4}-\d\d-\d\d .* V$", common)) >= 3
        assert re.findall(r"(?m)^\d{4}-\d\d-\d\d ", totp) == []
        stack = (relay.site.host.root / "etc/pam.d/isoloir-totp").read_text()
        assert stack.count("dir=/run/faillock-totp") == 3
    finally:
        relay.host("faillock", "--user", MEMBER_B, "--reset", check=False)


# -- the whole path, once more: the test command, a dead guard, the logs --------------


def test_mailguard_test_command_sends_one_message_of_each_kind(relay: Relay) -> None:
    secret = relay.site.host.root / "root" / "mail-test-password"
    secret.write_text(relay.passwords[MEMBER_A] + "\n")
    secret.chmod(0o600)
    try:
        run = relay.host(
            VENV, "mailguard", "test", "--host", relay.address, "--login", MEMBER_A,
            "--password-file", "/root/mail-test-password", "--cafile", f"/{CERT}", check=False,
        )  # fmt: skip
    finally:
        secret.unlink()
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 5 and all(line.startswith("ok ") for line in lines), run.stdout
    for held in relay.held():
        relay.host(VENV, "mailguard", "delete", str(held["queue_id"]))


def test_a_stopped_guard_defers_mail_never_passes_it(relay: Relay) -> None:
    tag = mark()
    rcpt = [voter(f"dead-{tag}")]
    relay.host("systemctl", "stop", "isoloir-mailguard.service")
    try:
        msg = campaign(relay.addresses[MEMBER_A], f"Sans garde {tag}", relay)
        deferred = relay.submit(MEMBER_A, msg, rcpt)
        assert 400 <= deferred.code < 500, deferred
    finally:
        relay.host("systemctl", "start", "isoloir-mailguard.service")
    wait_for(
        lambda: relay.site.host.root.joinpath(
            "var/spool/postfix/isoloir-mailguard/milter.sock"
        ).exists(),
        "the guard's socket",
    )
    time.sleep(2)
    assert relay.delivered(f"Sans garde {tag}") == {}


def test_no_log_holds_a_recipient_address(relay: Relay) -> None:
    assert len(USED) > 20
    journal = relay.host("journalctl", "--no-pager", "-o", "json", "--all").stdout
    assert "postfix/smtp" in journal and "mail decision" in journal
    files = relay.host(
        "grep", "-rlaF", "@" + VOTERS, "/var/log", "/run/log", check=False
    ).stdout.split()
    assert files == [], files
    leaked = sorted(a for a in USED if a in journal)
    assert leaked == [], f"{len(leaked)} address(es) in the journal"
    # The relay's own lines are there, addresses replaced.
    assert re.search(r"to=<\[redacted\]>, relay=127\.0\.0\.1", journal)
