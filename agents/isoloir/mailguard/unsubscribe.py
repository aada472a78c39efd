"""Unsubscribing by mail, during the campaign.

A message to the baseline's unsubscribe address (the `List-Unsubscribe` mailto
target) records its envelope sender as a *mail opt-out* at once, so the guard
drops that address from the very next message. Mail opt-outs are kept apart
from the suppression list (security N2): `MAIL FROM` on port 25 is not
authenticated, so anyone can write one for anyone, and a forged one must
never erase a person's recorded, dated consent at the purge (the purge reads
the suppression list only). They live in the guard's own directory,
`<state>/mailguard/optouts.sqlite` (HMAC digests, the time, and whether the
relay's SPF or DKIM result was aligned with the sender), where the agents can
read them.

A short confirmation goes back to the sender only when the relay's
Authentication-Results (RFC 8601, https://www.rfc-editor.org/rfc/rfc8601)
under the configured authserv-id say SPF or DKIM passed for the sender's
domain (aligned, as DMARC's relaxed mode: the same domain or a parent one);
never otherwise, so a forged sender gets no mail from the party's domain. It
is sent at most once per `CONFIRM_EVERY`, never to an automatic message or a
bounce (RFC 3834, "Recommendations for Automatic Responses to Electronic
Mail", https://www.rfc-editor.org/rfc/rfc3834). Each sending server (the
client address, kept as a digest) may record at most `SOURCE_LIMIT` opt-outs
per `SOURCE_WINDOW`; beyond, the message is deferred (450 4.7.1).

Nothing written there is thrown away (review E2): a message that is not a
plain opt-out (an access or erasure request, a complaint, "remove my phone
number too", an attachment, more than a few words) is forwarded to the DPO
(`organisation.dpo_contact`) as an attachment of a message from the
unsubscribe address (`dpo_copy`); the relay defers the voter's message when
that copy cannot be handed to Postfix. The sender is recorded as a mail
opt-out either way: the notice says any message there unsubscribes.
"""

from __future__ import annotations

import html
import re
import sqlite3
import unicodedata
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol

from isoloir.policy.model import Policies, address_domain
from isoloir.retention import tabular


class Digests(Protocol):
    """What the opt-out record needs from the suppression list: its HMAC."""

    def digest(self, kind: str, value: str) -> str: ...


CONFIRM_EVERY = timedelta(hours=24)
SOURCE_LIMIT = 20
SOURCE_WINDOW = timedelta(hours=1)
DB_NAME = "unsubscribe.sqlite"
OPTOUTS_NAME = "optouts.sqlite"


@dataclass(frozen=True)
class Unsubscribed:
    recorded: bool  # the address was added now (False: already there, or no usable sender)
    reply: EmailMessage | None  # the confirmation to send, if any
    authenticated: bool = False  # SPF or DKIM aligned with the sender, per the relay
    limited: bool = False  # the sending server is over its rate: nothing recorded


def db_path(state_dir: Path) -> Path:
    return state_dir / "mailguard" / DB_NAME


def optouts_path(state_dir: Path) -> Path:
    return state_dir / "mailguard" / OPTOUTS_NAME


def connect(path: Path) -> sqlite3.Connection:
    """A guard database in rollback-journal mode: the agents (another uid) read it
    with mode=ro, which a WAL database would need a writable -shm for."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        db.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        db.close()
        raise
    return db


class MailOptOuts:
    """The guard's own record of mail opt-outs (digests only), apart from the
    suppression list and from anyone's recorded consent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect(path)
        try:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS optouts (kind TEXT NOT NULL, digest TEXT NOT NULL,"
                " added_at TEXT NOT NULL, authenticated INTEGER NOT NULL,"
                " PRIMARY KEY (kind, digest))"
            )
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def for_reading(cls, path: Path) -> MailOptOuts | None:
        """An existing record read-only (the agents' side), None when there is none."""
        if not path.is_file():
            return None
        self = cls.__new__(cls)
        self.path = path
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10)
        return self

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MailOptOuts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, digest: str, *, authenticated: bool, now: datetime) -> bool:
        """Record one email digest; True when it is new. An authenticated opt-out
        upgrades an earlier unauthenticated one."""
        before = self._db.total_changes
        self._db.execute(
            "INSERT OR IGNORE INTO optouts VALUES ('email', ?, ?, ?)",
            (digest, now.isoformat(), int(authenticated)),
        )
        added = self._db.total_changes > before
        if authenticated and not added:
            self._db.execute(
                "UPDATE optouts SET authenticated = 1 WHERE kind = 'email' AND digest = ?",
                (digest,),
            )
        return added

    def contains(self, digest: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM optouts WHERE kind = 'email' AND digest = ?", (digest,)
        ).fetchone()
        return row is not None

    def count(self) -> tuple[int, int]:
        """(opt-outs, of which authenticated)."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(authenticated), 0) FROM optouts"
        ).fetchone()
        return int(row[0]), int(row[1])


def _domain_aligned(sender_domain: str, checked: str) -> bool:
    """DMARC-style relaxed alignment: the same domain, or `checked` a parent of it
    with at least two labels."""
    checked = checked.strip().strip(".").lower()
    if not checked or not sender_domain:
        return False
    if checked == sender_domain:
        return True
    return "." in checked and sender_domain.endswith("." + checked)


_RESULT = re.compile(r"(?i)\b(spf|dkim)\s*=\s*([a-z]+)\b([^;]*)")
_PROPERTY = re.compile(r"(?i)\b(smtp\.mailfrom|header\.d|header\.i)\s*=\s*\"?([^\s;\"]+)")


def authenticated(msg: Message, sender: str, authserv_id: str | None) -> bool:
    """SPF or DKIM passed for the sender's domain, per the first (topmost)
    Authentication-Results header carrying our authserv-id; False without one.

    Only the relay's own header counts: a verifier ahead of the guard must add it
    and remove any incoming header with that id (RFC 8601 section 5). Without a
    configured id nothing is trusted.
    """
    if not authserv_id:
        return False
    domain = sender.rpartition("@")[2].strip().strip(".").lower()
    if not domain:
        return False
    for raw in msg.get_all("Authentication-Results") or []:
        value = " ".join(str(raw).split())
        ident, _, results = value.partition(";")
        if ident.split()[:1] != [authserv_id.lower()] and ident.split()[:1] != [authserv_id]:
            continue
        for method, result, rest in _RESULT.findall(results):
            if result.lower() != "pass":
                continue
            for prop, checked in _PROPERTY.findall(rest):
                prop = prop.lower()
                if method.lower() == "spf" and prop == "smtp.mailfrom":
                    checked = checked.rpartition("@")[2]
                elif method.lower() == "dkim" and prop in ("header.d", "header.i"):
                    checked = checked.rpartition("@")[2]
                else:
                    continue
                if _domain_aligned(domain, checked):
                    return True
        return False  # the first header of ours decides
    return False


def is_automatic(msg: Message) -> bool:
    """An automatic message (RFC 3834 section 2): never answered."""
    auto = str(msg.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(msg.get("Precedence", "")).strip().lower()
    return auto not in ("", "no") or precedence in ("bulk", "list", "junk")


def confirmation(
    policies: Policies, to: str, now: datetime, forwarded: bool = False
) -> EmailMessage:
    """The short FR + EN confirmation, from the unsubscribe address to `to` only;
    says so when the message went on to the DPO (review E9: it promises only
    what the relay does)."""
    org = policies.baseline.organisation
    reply = EmailMessage()
    reply["From"] = org.unsubscribe
    reply["To"] = to
    reply["Subject"] = "Désinscription enregistrée / Unsubscribe confirmed"
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = make_msgid(domain=address_domain(org.unsubscribe) or None)
    reply["Auto-Submitted"] = "auto-replied"
    forwarded_fr = forwarded_en = ""
    if forwarded:
        forwarded_fr = (
            f"Votre message a été transmis à notre délégué à la protection des données "
            f"({org.dpo_contact}), qui vous répondra dans un délai d'un mois.\n"
        )
        forwarded_en = (
            f"Your message was passed on to our data protection officer ({org.dpo_contact}), "
            "who will answer you within one month.\n"
        )
    reply.set_content(
        f"Votre adresse est retirée des envois de {org.party} passant par son relais de "
        "messagerie. Pour vous opposer à toute prospection politique du parti, y compris "
        f"par téléphone ou SMS, écrivez à {org.rights_contact}.\n"
        + forwarded_fr
        + "Vos droits : accès, rectification, effacement, limitation, opposition ; "
        f"{org.rights_contact}. Réclamation auprès de la CNIL (www.cnil.fr).\n\n"
        f"Your address is removed from the mail {org.party} sends through its relay. To "
        "object to all of the party's political prospecting, by phone or SMS too, write "
        f"to {org.rights_contact}.\n"
        + forwarded_en
        + "Your rights: access, rectification, erasure, restriction, objection; "
        f"{org.rights_contact}. Complaint to the CNIL (www.cnil.fr).\n"
    )
    return reply


# A plain opt-out: a few words, none of which asks for anything else. Compared
# without accents, case-folded, on the subject and the sender's own text (quoted
# replies and signatures cut off).
PLAIN_MAX_WORDS = 25
_REQUEST_WORDS = re.compile(
    r"acces|acceder|copie|effac|supprim|suppression|droit|rgpd|gdpr|donnee|plainte"
    r"|reclam|cnil|rectif|corrig|telephone|portable|sms|appel|courrier|postal|avocat"
    r"|origine|source|pourquoi|comment avez|qui vous a|dpo|delegue|erase|delete|access"
    r"|complain|rectify|correct|phone|call|why|where did|lawyer|data|right",
)
_QUOTE_START = re.compile(
    r"^(>|-----\s*original|le .{0,80} a ecrit\s*:|on .{0,80} wrote:|de\s*:|from:|envoye\s*:"
    r"|sent:)",
    re.IGNORECASE,
)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def own_text(msg: Message) -> str:
    """The subject and the sender's own words: the first text part, cut at the
    first quoted line, reply header or signature separator."""
    parts = [msg.get("Subject", "") or ""]
    for part in msg.walk():
        if part.is_multipart() or part.get_content_type() not in ("text/plain", "text/html"):
            continue
        if part.get_filename() or part.get_content_disposition() == "attachment":
            continue
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            continue
        try:
            text = raw.decode(part.get_content_charset() or "utf-8", errors="replace")
        except LookupError:
            text = raw.decode("utf-8", errors="replace")
        if part.get_content_subtype() == "html":
            text = html.unescape(re.sub(r"<[^>]*>", " ", re.sub(r"(?i)<br\s*/?>|</p>", "\n", text)))
        for line in text.splitlines():
            folded = _fold(line.strip())
            if line.rstrip() == "--" or _QUOTE_START.match(folded):
                break
            parts.append(line)
        break
    return "\n".join(str(p) for p in parts)


def is_plain_optout(msg: Message) -> bool:
    """Nothing but "stop" / "unsubscribe" in a few words, and no attachment."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_maintype() != "text" or part.get_filename():
            return False
    text = _fold(own_text(msg))
    return len(text.split()) <= PLAIN_MAX_WORDS and not _REQUEST_WORDS.search(text)


def dpo_copy(policies: Policies, msg: Message, raw: bytes, now: datetime) -> EmailMessage:
    """The voter's message, attached whole, to the DPO (from the unsubscribe address)."""
    org = policies.baseline.organisation
    copy = EmailMessage()
    copy["From"] = org.unsubscribe
    copy["To"] = org.dpo_contact
    sender = str(msg.get("From", "") or "").strip()
    if sender:
        copy["Reply-To"] = sender
    subject = " ".join(str(msg.get("Subject", "") or "").split())[:120]
    copy["Subject"] = (
        "Demande reçue à l'adresse de désinscription / Request to the unsubscribe address"
        + (f" : {subject}" if subject else "")
    )
    copy["Date"] = format_datetime(now)
    copy["Message-ID"] = make_msgid(domain=address_domain(org.unsubscribe) or None)
    copy["Auto-Submitted"] = "auto-forwarded"
    copy.set_content(
        f"Ce message a été écrit à {org.unsubscribe} et n'est pas une simple demande de "
        "désinscription (l'expéditeur est déjà désinscrit des envois du relais). S'il "
        "s'agit d'une demande d'accès, de rectification, d'effacement ou d'opposition, "
        "elle doit recevoir une réponse dans le délai d'un mois (art. 12(3) RGPD) : "
        "isoloir person request open.\n\n"
        f"This message was written to {org.unsubscribe} and is not a plain unsubscribe "
        "(the sender is already unsubscribed from the relay's mail). An access, "
        "rectification, erasure or objection request is to be answered within one month "
        "(GDPR art. 12(3)): isoloir person request open.\n"
    )
    original = BytesParser(policy=email_policy.default).parsebytes(raw)
    copy.add_attachment(original, disposition="attachment")  # message/rfc822, never base64
    return copy


class ConfirmLimit:
    """At most one confirmation per address digest per `CONFIRM_EVERY`, and at most
    `SOURCE_LIMIT` opt-outs per sending server per `SOURCE_WINDOW`."""

    def __init__(self, state_dir: Path) -> None:
        self._db = connect(db_path(state_dir))
        try:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS confirmed"
                " (digest TEXT PRIMARY KEY, sent_at TEXT NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sources (digest TEXT NOT NULL, at TEXT NOT NULL)"
            )
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ConfirmLimit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def allow(self, digest: str, now: datetime) -> bool:
        """True (and recorded) when no confirmation went to `digest` within the window."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "DELETE FROM confirmed WHERE sent_at < ?", ((now - CONFIRM_EVERY).isoformat(),)
            )
            row = self._db.execute("SELECT 1 FROM confirmed WHERE digest = ?", (digest,)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO confirmed VALUES (?, ?)", (digest, now.isoformat()))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return row is None

    def source_allows(self, digest: str, now: datetime) -> bool:
        """True (and counted) while the source stays within its rate."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "DELETE FROM sources WHERE at < ?", ((now - SOURCE_WINDOW).isoformat(),)
            )
            (used,) = self._db.execute(
                "SELECT COUNT(*) FROM sources WHERE digest = ?", (digest,)
            ).fetchone()
            allowed = int(used) < SOURCE_LIMIT
            if allowed:
                self._db.execute("INSERT INTO sources VALUES (?, ?)", (digest, now.isoformat()))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return allowed


def unsubscribe(
    policies: Policies,
    store: Digests,
    mail_from: str,
    msg: Message,
    *,
    state_dir: Path | None,
    now: datetime,
    client: str | None = None,
    authserv_id: str | None = None,
    forwarded: bool = False,
) -> Unsubscribed:
    """Record the envelope sender as a mail opt-out; the confirmation to send.

    A null or unusable sender (a bounce) records nothing and gets no reply;
    nothing is recorded without a state directory. The suppression list
    (`store`) only provides the HMAC: it is never written here.
    """
    address = tabular.normalise_email(mail_from)
    if address is None or address == policies.baseline.organisation.unsubscribe.lower():
        return Unsubscribed(False, None)
    if state_dir is None:
        return Unsubscribed(False, None)
    aligned = authenticated(msg, address, authserv_id)
    with ConfirmLimit(state_dir) as limit:
        source = store.digest("client", client or "unknown")
        if not limit.source_allows(source, now):
            return Unsubscribed(False, None, aligned, limited=True)
        with MailOptOuts(optouts_path(state_dir)) as optouts:
            recorded = optouts.add(store.digest("email", address), authenticated=aligned, now=now)
        mail = policies.baseline.mail
        if not (mail.unsubscribe_confirm and aligned) or is_automatic(msg):
            return Unsubscribed(recorded, None, aligned)
        if not limit.allow(store.digest("email", address), now):
            return Unsubscribed(recorded, None, aligned)
    reply = confirmation(policies, address, now, forwarded)
    return Unsubscribed(recorded, reply, aligned)
