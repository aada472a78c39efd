"""Security N3: the "use Bcc" rule fails closed. Every header whose addresses the
recipients see is counted (To, Cc, Reply-To, Resent-*, Mail-Followup-To, an
address inside a display name), and a header that does not parse cleanly is
refused instead of counted as 0 (Debian 12's strict email.utils returns nothing
for such a header). These tests also run on the hosts' own interpreter
(tests/integration/test_mail_guard_host_python.py)."""

from __future__ import annotations

import pytest
from tests.unit.test_mailguard_guard import EXAMPLE, SENDER, env, guard

from isoloir.mailguard.guard import Envelope
from isoloir.policy import load_policies
from isoloir.policy.model import Policies

FIFTY = ", ".join(f"electeur{i}@exemple.fr" for i in range(50))
SIX = tuple(f"v{i}@voisins.example" for i in range(6))


@pytest.fixture(scope="module")
def base() -> Policies:
    return load_policies(EXAMPLE)


def raw(*headers: tuple[str, str]) -> bytes:
    lines = [f"From: {SENDER}", "Subject: Reunion"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\nBonjour.\r\n").encode()


@pytest.mark.parametrize(
    "typo",
    [
        "jean.dupont@gmail.com,",  # a trailing comma: strict getaddresses returns nothing
        "jean@x.fr;",
        "x@@y.fr",
        "x@y.fr (Jean",
        "Jean <j@x.fr",
        "a@x.fr b@y.fr",
        "a@x.fr, b@",
    ],
)
def test_fifty_visible_voters_and_one_typo_never_count_zero(base: Policies, typo: str) -> None:
    v = guard(base).evaluate(env(*SIX), raw(("To", f"{FIFTY}, {typo}")))
    assert v.action == "reject" and v.smtp_code == 550, v
    assert v.rule in ("visible_recipients", "address_header")
    assert "@" not in v.text


@pytest.mark.parametrize("typo", ["x@@y.fr", "x@y.fr (Jean", "a@x.fr b@y.fr", "a@x.fr, b@"])
def test_one_unreadable_address_header_is_refused_even_when_short(
    base: Policies, typo: str
) -> None:
    v = guard(base).evaluate(env("a@voisins.example"), raw(("Cc", typo)))
    assert (v.action, v.rule, v.smtp_code) == ("reject", "address_header", 550), v
    assert "Cc" in v.text and "Bcc" in v.text


@pytest.mark.parametrize(
    "name", ["Reply-To", "Resent-To", "Resent-Cc", "Mail-Followup-To", "Resent-From"]
)
def test_every_header_the_recipients_see_is_counted(base: Policies, name: str) -> None:
    six = ", ".join(SIX)
    v = guard(base).evaluate(env("a@voisins.example"), raw(("To", SENDER), (name, six)))
    assert (v.action, v.rule) == ("reject", "visible_recipients"), v
    assert v.counts["visible"] == 7


def test_addresses_inside_display_names_are_counted(base: Policies) -> None:
    names = ", ".join(
        f"=?utf-8?q?v{i}=40voisins=2Eexample?= <equipe{i}@mouvement-exemple.example>"
        for i in range(3)
    )
    v = guard(base).evaluate(env("a@voisins.example"), raw(("To", names)))
    assert (v.action, v.rule) == ("reject", "visible_recipients"), v
    assert v.counts["visible"] == 6


@pytest.mark.parametrize(
    "value",
    [
        "undisclosed-recipients:;",
        "a@x.fr, b@y.fr,",  # a trailing comma alone is harmless: both counted
        '"Dupont, Marie" <m@x.fr>, Jean (bureau) <j@x.fr>',
        "=?UTF-8?B?w4lsaXNl?= <e@x.fr>",
        "équipe <e@x.fr>",  # raw UTF-8 display name (SMTPUTF8 clients)
        '"e@x.fr" <e@x.fr>',  # the same address shown as the name: one
    ],
)
def test_clean_headers_still_pass(base: Policies, value: str) -> None:
    v = guard(base).evaluate(env("a@voisins.example"), raw(("To", value)))
    assert v.action == "accept", v
    assert v.counts["visible"] <= 2


# -- security N16: a login sends as itself -----------------------------------------------


@pytest.mark.parametrize(
    ("mail_from", "from_header"),
    [
        ("claire.fictive@mouvement-exemple.example", SENDER),  # the leader's envelope
        (SENDER, "Claire Fictive <claire.fictive@mouvement-exemple.example>"),  # her From
        (SENDER, f"{SENDER}, claire.fictive@mouvement-exemple.example"),
        (SENDER, "desinscription@mouvement-exemple.example"),
        (SENDER, ""),  # no From at all
    ],
)
def test_a_member_cannot_send_as_someone_else(
    base: Policies, mail_from: str, from_header: str
) -> None:
    lines = [f"From: {from_header}"] if from_header else []
    data = ("\r\n".join([*lines, "To: a@voisins.example", "Subject: x"]) + "\r\n\r\nx\r\n").encode()
    envelope = Envelope("dmodele", mail_from, ("a@voisins.example",))
    v = guard(base).evaluate(envelope, data)
    assert (v.action, v.rule, v.smtp_code) == ("reject", "sender_address", 550), v


def test_the_login_own_address_in_any_case_passes(base: Policies) -> None:
    envelope = Envelope("dmodele", SENDER.upper(), ("a@voisins.example",))
    data = raw(("To", "a@voisins.example")).replace(
        SENDER.encode(), b"Dina <" + SENDER.upper().encode() + b">"
    )
    assert guard(base).evaluate(envelope, data).action == "accept"


# -- issue 22 item 8: a phone's contacts exported as vCards -------------------------------


def vcards(n: int) -> bytes:
    return b"".join(
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:Fictif%d;Contact;;;\r\nFN:Contact Fictif%d\r\n"
        b"TEL;TYPE=CELL:+3363998%04d\r\nEMAIL:contact%d@fichier.example\r\nEND:VCARD\r\n"
        % (i, i, i, i)
        for i in range(n)
    )


def with_attachment(data: bytes, filename: str, ctype: str = "text/vcard") -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = "ami@ailleurs.example"
    msg["Subject"] = "Mes contacts"
    msg.set_content("Voici mes contacts.\n")
    maintype, subtype = ctype.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


@pytest.mark.parametrize(
    ("filename", "ctype"),
    [
        ("contacts.vcf", "text/vcard"),
        ("Contacts.VCF", "text/x-vcard"),
        ("export.txt", "text/plain"),  # renamed: found by its content
        ("photo.jpg", "application/octet-stream"),
    ],
)
def test_a_vcard_export_leaving_the_party_is_held(
    base: Policies, filename: str, ctype: str
) -> None:
    v = guard(base).evaluate(
        env("ami@ailleurs.example"), with_attachment(vcards(40), filename, ctype)
    )
    assert (v.action, v.rule) == ("hold", "attachment_outside"), v
    assert v.counts["attachments_personal"] == 1


def test_a_vcard_export_in_a_zip_is_held(base: Policies) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("contacts.vcf", vcards(12))
    data = with_attachment(buf.getvalue(), "contacts.zip", "application/zip")
    assert guard(base).evaluate(env("ami@ailleurs.example"), data).action == "hold"


def test_ones_own_card_or_a_vcard_inside_the_party_passes(base: Policies) -> None:
    own = with_attachment(vcards(1), "dina.vcf")
    assert guard(base).evaluate(env("ami@ailleurs.example"), own).action == "accept"
    inside = "paul.test@mouvement-exemple.example"
    v = guard(base).evaluate(env(inside), with_attachment(vcards(40), "contacts.vcf"))
    assert v.action == "accept"


# -- security N13: the easy ways around the DLP and the notice ---------------------------


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("contacts.csv.gz", b"\x1f\x8b\x08\x00" + b"\x00" * 40),
        ("contacts.7z", b"7z\xbc\xaf\x27\x1c" + b"\x00" * 40),
        ("contacts.tar", b"contacts.csv".ljust(257, b"\x00") + b"ustar\x0000" + b"\x00" * 300),
        ("contacts.bz2", b"BZh91AY&SY" + b"\x00" * 40),
    ],
)
def test_archives_the_guard_cannot_open_are_held_when_leaving(
    base: Policies, filename: str, data: bytes
) -> None:
    msg = with_attachment(data, filename, "application/octet-stream")
    v = guard(base).evaluate(env("ami@ailleurs.example"), msg)
    assert (v.action, v.counts["attachments_unreadable"]) == ("hold", 1), v


def test_a_table_pasted_as_a_second_inline_text_part_is_read(base: Policies) -> None:
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    outer = MIMEMultipart("mixed")
    outer["From"] = SENDER
    outer["To"] = "ami@ailleurs.example"
    outer["Subject"] = "Le fichier"
    outer.attach(MIMEText("Voici le fichier.\n", "plain", "utf-8"))
    rows = "".join(
        f"Fictif{i};Contact;contact{i:02d}@fichier.example;06 39 98 00 {i:02d}\n" for i in range(30)
    )
    outer.attach(MIMEText("nom;prenom;email;telephone\n" + rows, "plain", "utf-8"))
    v = guard(base).evaluate(env("ami@ailleurs.example"), outer.as_bytes())
    assert v.action == "hold" and v.counts["attachments_personal"] == 1, v


def test_a_hidden_notice_is_not_a_notice_and_the_added_one_comes_first(base: Policies) -> None:
    import dataclasses
    import quopri

    from tests.unit.test_mailguard_guard import notice

    block = notice(base).replace("\n", "<br>")
    hidden = f'<html><body><p>Bonjour</p><div style="display: none">{block}</div></body></html>'
    rcpts = tuple(f"v{i}@voisins.example" for i in range(8))
    msg = EmailMessage_with_html(hidden)
    v = guard(base).evaluate(env(*rcpts), msg)
    assert (v.action, v.rule) == ("reject", "transparency"), v
    add = dataclasses.replace(
        base, baseline=dataclasses.replace(
            base.baseline, mail=dataclasses.replace(base.baseline.mail, transparency="add")
        ),
    )  # fmt: skip
    open_div = '<html><body><div style="display:none"><p>Bonjour</p></body></html>'
    fixed = guard(add).evaluate(env(*rcpts), EmailMessage_with_html(open_div))
    assert fixed.action == "accept" and fixed.new_body is not None, fixed
    html = quopri.decodestring(fixed.new_body).decode()
    assert html.index("display:block !important") < html.index('<div style="display:none">')


def EmailMessage_with_html(html: str) -> bytes:  # noqa: N802 - reads like the class it builds
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = "undisclosed-recipients:;"
    msg["Subject"] = "Reunion"
    msg["List-Unsubscribe"] = "<mailto:desinscription@mouvement-exemple.example>"
    msg.set_content(html, subtype="html")
    return msg.as_bytes()


def test_many_small_messages_from_one_login_are_a_mass_mailing(
    base: Policies, tmp_path: pytest.TempPathFactory
) -> None:
    from tests.unit.test_mailguard_guard import NOW, TODAY, message

    from isoloir.mailguard.guard import HOURLY_BULK, Guard

    g = Guard(base, suppression=None, today=TODAY, now=lambda: NOW, state_dir=tmp_path)  # type: ignore[arg-type]
    five = tuple(f"v{i}@voisins.example" for i in range(5))
    verdicts = [g.evaluate(env(*five), message()) for _ in range(HOURLY_BULK // 5 + 1)]
    assert all(v.action == "accept" for v in verdicts[: HOURLY_BULK // 5])
    last = verdicts[-1]
    assert (last.action, last.rule, last.counts["bulk"]) == ("reject", "transparency", 1), last
