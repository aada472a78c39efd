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
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage, Message
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


def confirmation(policies: Policies, to: str, now: datetime) -> EmailMessage:
    """The short FR + EN confirmation, from the unsubscribe address to `to` only."""
    org = policies.baseline.organisation
    reply = EmailMessage()
    reply["From"] = org.unsubscribe
    reply["To"] = to
    reply["Subject"] = "Désinscription enregistrée / Unsubscribe confirmed"
    reply["Date"] = format_datetime(now)
    reply["Message-ID"] = make_msgid(domain=address_domain(org.unsubscribe) or None)
    reply["Auto-Submitted"] = "auto-replied"
    reply.set_content(
        f"Votre adresse est retirée des envois de {org.party} : vous ne recevrez plus nos "
        "messages de campagne.\n"
        f"Vos droits (accès, rectification, opposition) : {org.rights_contact}.\n\n"
        f"Your address is removed from {org.party}'s mailings: you will receive no more "
        "campaign messages from us.\n"
        f"Your rights (access, rectification, objection): {org.rights_contact}.\n"
    )
    return reply


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
    return Unsubscribed(recorded, confirmation(policies, address, now), aligned)
