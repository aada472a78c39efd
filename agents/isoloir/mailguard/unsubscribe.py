"""Unsubscribing by mail, during the campaign.

A message to the baseline's unsubscribe address (the `List-Unsubscribe` mailto
target) puts its envelope sender in the suppression list at once (the same
HMAC and normalisation as the purge), so the guard drops that address from the
very next message. A short confirmation goes back to that address only, at
most once per `CONFIRM_EVERY`, and never to an automatic message or a bounce
(RFC 3834, "Recommendations for Automatic Responses to Electronic Mail",
https://www.rfc-editor.org/rfc/rfc3834). The rate limit keeps HMAC digests
only (the suppression list's), in `<state>/mailguard/unsubscribe.sqlite`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid
from pathlib import Path

from isoloir.policy.model import Policies, address_domain
from isoloir.retention import tabular
from isoloir.retention.suppression import SuppressionList

ELECTION = "mail-unsubscribe"  # the `election` column of entries recorded here
RUN_ID = "mailguard"
CONFIRM_EVERY = timedelta(hours=24)
DB_NAME = "unsubscribe.sqlite"


@dataclass(frozen=True)
class Unsubscribed:
    recorded: bool  # the address was added now (False: already there, or no usable sender)
    reply: EmailMessage | None  # the confirmation to send, if any


def db_path(state_dir: Path) -> Path:
    return state_dir / "mailguard" / DB_NAME


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
    """At most one confirmation per address digest per `CONFIRM_EVERY`."""

    def __init__(self, state_dir: Path) -> None:
        path = db_path(state_dir)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS confirmed"
                " (digest TEXT PRIMARY KEY, sent_at TEXT NOT NULL)"
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


def unsubscribe(
    policies: Policies,
    store: SuppressionList,
    mail_from: str,
    msg: Message,
    *,
    state_dir: Path | None,
    now: datetime,
) -> Unsubscribed:
    """Record the envelope sender in the suppression list; the confirmation to send.

    A null or unusable sender (a bounce) records nothing and gets no reply.
    """
    address = tabular.normalise_email(mail_from)
    if address is None or address == policies.baseline.organisation.unsubscribe.lower():
        return Unsubscribed(False, None)
    before = store.count(run_id=RUN_ID)
    after = store.add([address], [], election=ELECTION, run_id=RUN_ID, now=now)
    recorded = after > before
    mail = policies.baseline.mail
    if not mail.unsubscribe_confirm or state_dir is None or is_automatic(msg):
        return Unsubscribed(recorded, None)
    with ConfirmLimit(state_dir) as limit:
        if not limit.allow(store.digest("email", address), now):
            return Unsubscribed(recorded, None)
    return Unsubscribed(recorded, confirmation(policies, address, now))
