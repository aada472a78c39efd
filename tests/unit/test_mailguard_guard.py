"""The mail guard's rules, in process: each numbered rule accepts its good twin
and refuses (or fixes) its bad case; suppressed recipients are dropped and never
named; the verdict's text is one ASCII line without any address."""

from __future__ import annotations

import dataclasses
import io
import logging
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isoloir.mailguard import attachments, transparency
from isoloir.mailguard.guard import (
    ELECTION_HEADER,
    Envelope,
    Guard,
    Verdict,
    smtp_text,
)
from isoloir.policy import load_policies
from isoloir.policy.model import Policies
from isoloir.retention import keys
from isoloir.retention.suppression import SuppressionList, db_path

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"
TODAY = date(2027, 1, 10)  # exempleville-2027 is active (due 2027-05-21)
NOW = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
UNSUB = "desinscription@mouvement-exemple.example"
SENDER = "dina.modele@mouvement-exemple.example"
VOTERS = tuple(f"electeur{i}@voisins.example" for i in range(12))
CONTACTS_CSV = (
    "prenom;nom;email;telephone\n"
    "Elise;Demo;elise@voisins.example;01 99 00 12 34\n"
    "Gaelle;Modele;gaelle@voisins.example;06 39 98 12 34\n"
    "Zoe;Factice;zoe@voisins.example;06 39 98 12 35\n"
)
PLAIN_CSV = "produit;quantite\naffiches;200\ntracts;5000\n"


@pytest.fixture(scope="module")
def base() -> Policies:
    return load_policies(EXAMPLE)


def with_mail(p: Policies, **changes: object) -> Policies:
    mail = dataclasses.replace(p.baseline.mail, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(p, baseline=dataclasses.replace(p.baseline, mail=mail))


def with_second_election(p: Policies, **changes: object) -> Policies:
    first = p.elections[0]
    other = dataclasses.replace(
        first, id="voisinville-2027", label="Municipale de Voisinville 2027", **changes
    )
    return dataclasses.replace(p, elections=(first, other))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SuppressionList]:
    keys.init(tmp_path / "secrets")
    with SuppressionList(db_path(tmp_path / "state"), keys.hmac_key(tmp_path / "secrets")) as s:
        yield s


def guard(p: Policies, store: SuppressionList | None = None, **kw: object) -> Guard:
    return Guard(p, suppression=store, today=TODAY, now=lambda: NOW, **kw)  # type: ignore[arg-type]


def notice(p: Policies) -> str:
    e = p.elections[0]
    return transparency.notice(p, e, transparency.origins(e, None), "fr")


def message(
    to: tuple[str, ...] = ("Equipe <contact@mouvement-exemple.example>",),
    cc: tuple[str, ...] = (),
    body: str = "Bonjour,\nvenez au meeting samedi.\n",
    headers: dict[str, str] | None = None,
    attach: tuple[tuple[str, bytes, str], ...] = (),
    html: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = "Réunion publique"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, data, ctype in attach:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def env(*rcpts: str, login: str | None = "dmodele") -> Envelope:
    return Envelope(login=login, mail_from=SENDER, recipients=rcpts or ("a@voisins.example",))


def bulk_ok(p: Policies, **kw: object) -> bytes:
    return message(
        to=("undisclosed-recipients:;",),
        body="Bonjour,\nvenez au meeting.\n\n" + notice(p) + "\n",
        headers={"List-Unsubscribe": f"<mailto:{UNSUB}>"},
        **kw,  # type: ignore[arg-type]
    )


def assert_refused(v: Verdict, rule: str, code: int = 550) -> None:
    assert (v.action, v.rule, v.smtp_code) == ("reject", rule, code), v
    assert v.smtp_status.startswith("5.")
    assert v.text.isascii() and "\r" not in v.text and "\n" not in v.text
    assert " / " in v.text  # French, then English


# ------------------------------------------------------------- rule 4
def test_member_of_the_active_election_is_accepted(base: Policies) -> None:
    v = guard(base).evaluate(env("a@voisins.example"), message())
    assert (v.action, v.rule, v.smtp_code, v.election) == ("accept", "ok", 250, "exempleville-2027")
    assert ELECTION_HEADER in v.remove_headers  # internal header never leaves


def test_unauthenticated_and_non_member_are_refused(base: Policies) -> None:
    assert_refused(guard(base).evaluate(env(login=None), message()), "not_authenticated", 530)
    # ptest is a person of the party but a member of no election
    assert_refused(guard(base).evaluate(env(login="ptest"), message()), "sender_not_member")


def test_election_past_its_retention_date_or_held_cannot_send(base: Policies) -> None:
    late = Guard(base, suppression=None, today=date(2027, 5, 21))
    v = late.evaluate(env(), message())
    assert_refused(v, "election_inactive")
    assert "2027-05-21" in v.text
    held = dataclasses.replace(
        base, elections=(dataclasses.replace(base.elections[0], legal_hold=True),)
    )
    assert_refused(guard(held).evaluate(env(), message()), "election_inactive")
    # the day before the due date it may still send
    assert (
        Guard(base, suppression=None, today=date(2027, 5, 20)).evaluate(env(), message()).action
        == "accept"
    )


def test_member_of_two_elections_must_name_one(base: Policies) -> None:
    two = with_second_election(base)
    v = guard(two).evaluate(env(), message())
    assert_refused(v, "election_ambiguous")
    assert ELECTION_HEADER in v.text
    named = message(headers={ELECTION_HEADER: "voisinville-2027"})
    ok = guard(two).evaluate(env(), named)
    assert (ok.action, ok.election) == ("accept", "voisinville-2027")


def test_one_team_cannot_send_as_another(base: Policies) -> None:
    # bexemple's own election is voisinville; the header names exempleville (dmodele's)
    two = with_second_election(base, members=("bexemple",))
    forged = message(headers={ELECTION_HEADER: "exempleville-2027"})
    v = guard(two).evaluate(env(login="bexemple"), forged)
    assert_refused(v, "sender_not_member")
    assert "exempleville-2027" in v.text
    assert guard(two).evaluate(env(login="bexemple"), message()).election == "voisinville-2027"
    unknown = message(headers={ELECTION_HEADER: "<script>@x.example"})
    v2 = guard(two).evaluate(env(login="bexemple"), unknown)
    assert_refused(v2, "sender_not_member")
    assert "x.example" not in v2.text  # a forged value is never echoed


# ------------------------------------------------------------- rule 1
def test_five_visible_recipients_pass_six_are_refused_with_bcc(base: Policies) -> None:
    five = VOTERS[:5]
    ok = guard(base).evaluate(env(*five), message(to=five[:3], cc=five[3:]))
    assert ok.action == "accept" and ok.counts["visible"] == 5
    six = VOTERS[:6]
    v = guard(base).evaluate(env(*six), message(to=six[:3], cc=six[3:]))
    assert_refused(v, "visible_recipients")
    assert "Cci" in v.text and "Bcc" in v.text
    assert not any(a in v.text for a in six)


def test_visible_limit_follows_the_policy(base: Policies) -> None:
    two = with_mail(base, max_visible_recipients=2)
    v = guard(two).evaluate(env(*VOTERS[:2]), message(to=VOTERS[:3]))
    assert_refused(v, "visible_recipients")


# ------------------------------------------------------------- rule 2
def test_bulk_with_notice_and_list_unsubscribe_is_accepted(base: Policies) -> None:
    v = guard(base).evaluate(env(*VOTERS), bulk_ok(base))
    assert (v.action, v.rule, v.new_body, v.counts["bulk"]) == ("accept", "ok", None, 1)


def test_bulk_without_notice_is_refused(base: Policies) -> None:
    plain = message(to=("undisclosed-recipients:;",))
    v = guard(base).evaluate(env(*VOTERS), plain)
    assert_refused(v, "transparency")
    assert "List-Unsubscribe" in v.text and UNSUB in v.text
    # only the header missing: still refused
    no_header = message(to=("undisclosed-recipients:;",), body="x\n" + notice(base))
    assert_refused(guard(base).evaluate(env(*VOTERS), no_header), "transparency")
    # a small message (not bulk) needs neither
    assert guard(base).evaluate(env(*VOTERS[:5]), plain).action == "accept"


def test_notice_is_added_when_the_policy_says_add(base: Policies) -> None:
    add = with_mail(base, transparency="add")
    raw = message(to=("undisclosed-recipients:;",), html="<html><body><p>Bonjour</p></body></html>")
    v = guard(add).evaluate(env(*VOTERS), raw)
    assert (v.action, v.counts["block_added"]) == ("accept", 1)
    assert ("List-Unsubscribe", f"<mailto:{UNSUB}?subject=unsubscribe>") in v.add_headers
    assert v.new_body is not None and b"\r\n" in v.new_body
    rebuilt = apply(raw, v)
    parsed = BytesParser(policy=policy.default).parsebytes(rebuilt)
    texts = [p.get_content() for p in transparency.body_text_parts(parsed)]
    assert len(texts) == 2 and all("Mouvement Exemple" in t and UNSUB in t for t in texts)
    # the election's declared origins, in French (prospects: the campaign's forms)
    assert "un formulaire par lequel vous avez accepté d'être contacté(e)" in texts[0]
    # the fixed message now passes as it is: the detection and the block agree
    again = guard(base).evaluate(env(*VOTERS), rebuilt)
    assert (again.action, again.new_body) == ("accept", None)


# The complete notice (review E3, E4): every item the CNIL and art. 13/14 ask for.
COMPLETE_FR = (
    "Pour ne plus recevoir nos messages, écrivez à " + UNSUB,
    "Mouvement Exemple (Mouvement Exemple (association loi 1901), 12 rue de l'Isoloir, "
    "99000 Exempleville), responsable du traitement",
    "pour : Municipale partielle d'Exempleville 2027",
    "Finalité : communication politique pour cette élection",
    "Base légale : ",
    "Origine de votre adresse : ",
    "Conservation : jusqu'au 21/05/2027 au plus tard",
    # compliance review E7: what is kept with consent is not kept forever
    "recontacté(e), jusqu'à la fin de nos échanges ou de votre adhésion, avec un réexamen "
    "chaque année.",
    "Délégué à la protection des données : dpo@mouvement-exemple.example",
    "accès, rectification, effacement, limitation, opposition à tout moment",
    "droits@mouvement-exemple.example",
    "réclamation auprès de la CNIL (www.cnil.fr)",
)


def test_one_message_to_one_voter_gets_the_complete_notice_and_list_unsubscribe(
    base: Policies,
) -> None:
    # mode reject (the example's): a personal message is completed, never refused
    assert base.baseline.mail.transparency == "reject"
    raw = message(to=(VOTERS[0],))
    v = guard(base).evaluate(env(VOTERS[0]), raw)
    assert (v.action, v.counts["bulk"], v.counts["block_added"]) == ("accept", 0, 1)
    assert ("List-Unsubscribe", f"<mailto:{UNSUB}?subject=unsubscribe>") in v.add_headers
    text = BytesParser(policy=policy.default).parsebytes(apply(raw, v)).get_content()
    for item in COMPLETE_FR:
        assert item in text, item
    # the two datasets an e-mail may come from, and their two legal bases
    assert "un formulaire par lequel vous avez accepté d'être contacté(e)" in text
    assert "notre rencontre lors du porte-à-porte" in text
    assert "l'intérêt légitime du parti" in text
    assert "liste électorale" not in text


def test_a_message_inside_the_party_is_left_alone(base: Policies) -> None:
    v = guard(base).evaluate(env("cfictive@mouvement-exemple.example"), message())
    assert (v.action, v.new_body, v.add_headers) == ("accept", None, ())


def test_a_partial_notice_of_the_sender_is_completed(base: Policies) -> None:
    # party, election and unsubscribe address, but neither the DPO nor the CNIL
    partial = (
        "-- \nMouvement Exemple, Municipale partielle d'Exempleville 2027. "
        f"Desinscription : {UNSUB}\n"
    )
    raw = message(to=(VOTERS[0],), body="Bonjour\n" + partial,
                  headers={"List-Unsubscribe": f"<mailto:{UNSUB}>"})  # fmt: skip
    v = guard(base).evaluate(env(VOTERS[0]), raw)
    assert (v.action, v.counts["block_added"]) == ("accept", 1)
    text = BytesParser(policy=policy.default).parsebytes(apply(raw, v)).get_content()
    assert "dpo@mouvement-exemple.example" in text and "CNIL" in text
    # the same partial notice in a bulk message is refused (mode reject)
    bulk = message(to=("undisclosed-recipients:;",), body="Bonjour\n" + partial,
                   headers={"List-Unsubscribe": f"<mailto:{UNSUB}>"})  # fmt: skip
    refused = guard(base).evaluate(env(*VOTERS), bulk)
    assert (refused.action, refused.rule) == ("reject", "transparency")
    assert "Bulk message without the complete notice" in refused.text
    assert "DPO, CNIL" in refused.text


def test_an_electoral_list_is_never_given_as_an_e_mail_origin(base: Policies) -> None:
    e = base.elections[0]
    roll = dataclasses.replace(e.datasets[1], name="liste", origin="electoral_roll")
    p = dataclasses.replace(base, elections=(dataclasses.replace(e, datasets=(roll,)),))
    raw = message(to=(VOTERS[0],), headers={"X-Isoloir-Dataset": "liste"})
    v = guard(p).evaluate(env(VOTERS[0]), raw)
    assert (v.action, v.rule) == ("reject", "transparency")
    assert "electoral list, which holds no e-mail address" in v.text
    # without the header: no dataset can hold an e-mail; the source is told on request
    v = guard(p).evaluate(env(VOTERS[0]), message(to=(VOTERS[0],)))
    text = BytesParser(policy=policy.default).parsebytes(apply(message(to=(VOTERS[0],)), v))
    body = text.get_content()
    assert "liste électorale" not in body
    assert "une source que nous vous indiquerons sur simple demande à droits@" in body


def test_single_part_rewrite_replaces_the_content_headers(base: Policies) -> None:
    add = with_mail(base, transparency="add", language="en")
    raw = message(to=("undisclosed-recipients:;",), body="Hello\n")
    v = guard(add).evaluate(env(*VOTERS), raw)
    assert "Content-Transfer-Encoding" in v.remove_headers
    rebuilt = BytesParser(policy=policy.default).parsebytes(apply(raw, v))
    text = rebuilt.get_content()
    assert text.startswith("Hello\n") and "This message is sent by Mouvement Exemple" in text


def test_notice_cannot_be_added_to_a_message_without_text(base: Policies) -> None:
    add = with_mail(base, transparency="add")
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = "undisclosed-recipients:;"
    msg.set_content(b"%PDF-1.4", maintype="application", subtype="pdf")
    v = guard(add).evaluate(env(*VOTERS), msg.as_bytes())
    assert_refused(v, "transparency")


def apply(raw: bytes, v: Verdict) -> bytes:
    """What the relay does with a verdict: remove, add headers, replace the body."""
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = []
    removed = {h.lower() for h in v.remove_headers}
    keep = True
    for line in head.split(b"\n"):
        if not line[:1].isspace():
            keep = line.split(b":", 1)[0].decode().lower() not in removed
        if keep:
            lines.append(line)
    lines += [f"{k}: {val}".encode() for k, val in v.add_headers]
    new_body = v.new_body.replace(b"\r\n", b"\n") if v.new_body is not None else body
    return b"\n".join(lines) + b"\n\n" + new_body


# ------------------------------------------------------------- rule 3
@pytest.mark.parametrize("where", ["to", "cc", "bcc"])
def test_suppressed_recipient_is_dropped_and_never_named(
    base: Policies,
    store: SuppressionList,
    where: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gone = "Gaelle.Optout@Voisins.example"
    store.add(["gaelle.optout@voisins.example"], [], election="x", run_id="r", now=NOW)
    others = VOTERS[:3]
    to = (*others, gone) if where == "to" else others
    cc = (gone,) if where == "cc" else ()
    rcpts = (*others, f"<{gone}>" if where == "bcc" else gone)
    caplog.set_level(logging.DEBUG)
    v = guard(base, store).evaluate(env(*rcpts), message(to=to, cc=cc))
    assert (v.action, v.drop, v.counts["dropped"]) == ("accept", (rcpts[-1],), 1)
    assert gone.lower() not in v.text.lower()
    out = capsys.readouterr()
    assert "optout" not in (caplog.text + out.out + out.err).lower()


def test_everyone_suppressed_is_still_accepted_with_all_dropped(
    base: Policies, store: SuppressionList
) -> None:
    store.add(["a@voisins.example"], [], election="x", run_id="r", now=NOW)
    v = guard(base, store).evaluate(env("a@voisins.example"), message())
    assert (v.action, v.rule, v.drop) == ("accept", "suppressed", ("a@voisins.example",))


def test_nobody_suppressed_drops_nobody(base: Policies, store: SuppressionList) -> None:
    v = guard(base, store).evaluate(env(*VOTERS[:3]), message())
    assert v.drop == () and v.counts["dropped"] == 0


# ------------------------------------------------------------- rule 5
def xlsx(cells: list[str]) -> bytes:
    buf = io.BytesIO()
    strings = "".join(f"<si><t>{c}</t></si>" for c in cells)
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/sharedStrings.xml", f"<sst>{strings}</sst>")
    return buf.getvalue()


def zipped(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return buf.getvalue()


CONTACT_CELLS = ["elise@voisins.example", "06 39 98 12 34", "gaelle@voisins.example"]
PERSONAL = [
    ("contacts.csv", CONTACTS_CSV.encode(), "text/csv"),
    ("photo.png", CONTACTS_CSV.encode("cp1252"), "image/png"),  # renamed: read by content
    ("fichier.xlsx", xlsx(CONTACT_CELLS), "application/octet-stream"),
    (
        "archive.zip",
        zipped("export/contacts.tsv", CONTACTS_CSV.replace(";", "\t").encode()),
        "application/zip",
    ),
    ("double.zip", zipped("tableur.xlsx", xlsx(CONTACT_CELLS)), "application/zip"),
    ("rapport.pdf", xlsx(CONTACT_CELLS), "application/pdf"),  # a workbook named .pdf
]


@pytest.mark.parametrize("attachment", PERSONAL, ids=[a[0] for a in PERSONAL])
def test_personal_table_to_outside_is_held(
    base: Policies, attachment: tuple[str, bytes, str]
) -> None:
    v = guard(base).evaluate(env("journaliste@presse.example"), message(attach=(attachment,)))
    assert (v.action, v.rule, v.smtp_code) == ("hold", "attachment_outside", 250)
    assert v.counts["attachments_personal"] == 1 and v.counts["recipients_outside"] == 1
    assert v.text.isascii() and "presse" not in v.text


def test_personal_table_inside_the_party_or_harmless_table_outside_passes(
    base: Policies,
) -> None:
    inside = guard(base).evaluate(
        env("claire.fictive@mouvement-exemple.example"), message(attach=(PERSONAL[0],))
    )
    assert (inside.action, inside.counts["attachments_personal"]) == ("accept", 1)
    harmless = ("commande.csv", PLAIN_CSV.encode(), "text/csv")
    out = guard(base).evaluate(env("imprimeur@presse.example"), message(attach=(harmless,)))
    assert (out.action, out.counts["attachments_tables"], out.counts["attachments_personal"]) == (
        "accept",
        1,
        0,
    )


def test_encrypted_or_corrupt_spreadsheet_counts_as_unreadable_and_is_held(
    base: Policies,
) -> None:
    corrupt = ("liste.xlsx", b"PK\x03\x04 not really a zip", "application/octet-stream")
    v = guard(base).evaluate(env("x@presse.example"), message(attach=(corrupt,)))
    assert (v.action, v.counts["attachments_unreadable"]) == ("hold", 1)


def test_zip_member_reads_are_bounded() -> None:
    big = zipped("grand.csv", (CONTACTS_CSV * 20000).encode())  # ~2 MB decompressed
    msg = BytesParser(policy=policy.default).parsebytes(
        message(attach=(("grand.zip", big, "application/zip"),))
    )
    found = attachments.scan(msg)
    assert (found.spreadsheets, found.personal) == (1, 1)


def test_party_domains_include_subdomains_and_follow_the_policy(base: Policies) -> None:
    sub = guard(base).evaluate(
        env("federation@lyon.mouvement-exemple.example"), message(attach=(PERSONAL[0],))
    )
    assert sub.action == "accept"
    allied = with_mail(base, party_domains=("mouvement-exemple.example", "presse.example"))
    v = guard(allied).evaluate(env("journaliste@presse.example"), message(attach=(PERSONAL[0],)))
    assert v.action == "accept"


# ------------------------------------------------------------ ordering
def test_first_refusal_wins_in_the_documented_order(base: Policies) -> None:
    six = VOTERS[:6]
    bad_everything = message(to=six, attach=(PERSONAL[0],))
    assert guard(base).evaluate(env(*six, login="ptest"), bad_everything).rule == (
        "sender_not_member"
    )
    assert guard(base).evaluate(env(*six), bad_everything).rule == "visible_recipients"
    no_notice = message(to=("undisclosed-recipients:;",), attach=(PERSONAL[0],))
    assert guard(base).evaluate(env(*VOTERS), no_notice).rule == "transparency"


def test_disabled_guard_accepts(base: Policies) -> None:
    off = with_mail(base, enabled=False)
    assert guard(off).evaluate(env(*VOTERS), message(to=VOTERS)).rule == "disabled"


def test_oversized_message_is_refused_before_parsing(base: Policies) -> None:
    v = guard(base, max_message_bytes=100).evaluate(env(), message())
    assert_refused(v, "too_large", 552)


# ------------------------------------------------------- text property
def test_smtp_text_transliterates() -> None:
    assert smtp_text("élection terminée", "done") == "election terminee / done"
    assert smtp_text("a\r\nb 100%", "c") == "a b 100 / c"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(min_value=1, max_value=12),
    visible=st.integers(min_value=0, max_value=12),
    login=st.sampled_from(["dmodele", "ptest", None, "cfictive"]),
    election=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    locals_=st.lists(st.from_regex(r"[a-z][a-z0-9.]{0,10}", fullmatch=True), min_size=12,
                     max_size=12),
)  # fmt: skip
def test_verdict_text_never_holds_a_recipient_or_a_line_break(
    base: Policies, n: int, visible: int, login: str | None, election: str | None,
    locals_: list[str],
) -> None:  # fmt: skip
    rcpts = tuple(f"{loc}{i}@destinataires.example" for i, loc in enumerate(locals_[:n]))
    headers = {}
    if election is not None and election.isprintable():
        headers[ELECTION_HEADER] = election
    raw = message(to=rcpts[: min(visible, n)] or ("undisclosed-recipients:;",), headers=headers)
    v = guard(base).evaluate(env(*rcpts, login=login), raw)
    assert v.text.isascii() and not any(c in v.text for c in "\r\n%")
    assert len(v.text) <= 400
    assert not any(r in v.text.lower() for r in rcpts)
    assert "destinataires.example" not in v.text
    assert set(v.drop) <= set(rcpts)


def test_a_failing_suppression_list_is_a_temporary_refusal(
    base: Policies, store: SuppressionList
) -> None:
    store.close()  # any SQLite failure while checking recipients
    v = guard(base, store).evaluate(env("a@voisins.example"), message())
    assert (v.action, v.rule, v.smtp_code, v.smtp_status) == ("reject", "guard_error", 451, "4.3.0")


def test_documents_and_plain_text_notes_are_not_tables(base: Policies) -> None:
    note = ("notes.txt", b"Contact presse : presse@mouvement-exemple.example\n", "text/plain")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?>\n<Types><Default/></Types>')
        zf.writestr("word/document.xml", "<?xml?>\n<w:p>presse@mouvement-exemple.example</w:p>")
    docx = ("communique.docx", buf.getvalue(), "application/octet-stream")
    v = guard(base).evaluate(env("journaliste@presse.example"), message(attach=(note, docx)))
    assert (v.action, v.counts["attachments"], v.counts["attachments_tables"]) == ("accept", 2, 0)
