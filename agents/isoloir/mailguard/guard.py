"""The guard's decision for one message: a pure function of the policies, the
envelope, the message and the suppression list (docs/mailguard.md).

Rules, the first refusal winning: the unsubscribe address first (the message is
an opt-out); then (4) the sender must be a member of an active election, (1)
at most `mail.max_visible_recipients` addresses in To and Cc, (2) every
message to someone outside the party carries the complete transparency notice
and List-Unsubscribe (a bulk one is refused without them unless the mode is
`add`; a message to a few people gets them added),
(3) suppressed recipients are dropped, (5) a table of personal data going
outside the party's domains is held. Nothing here logs; the verdict's text and
counts never hold an address.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from email import headerregistry
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Final

from isoloir import clock
from isoloir.mailguard import attachments, transparency, unsubscribe
from isoloir.policy.model import Election, Policies
from isoloir.retention import planning, tabular
from isoloir.retention.suppression import SuppressionList

ACCEPT: Final = "accept"
REJECT: Final = "reject"
HOLD: Final = "hold"
UNSUBSCRIBE: Final = "unsubscribe"

ELECTION_HEADER: Final = "X-Isoloir-Election"
DATASET_HEADER: Final = "X-Isoloir-Dataset"
# Removed from every message the relay passes on: they are the party's business.
INTERNAL_HEADERS: Final = (ELECTION_HEADER, DATASET_HEADER)
MAX_MESSAGE_BYTES: Final = 50 * 1024 * 1024
# More recipients than this from one login within an hour make each further
# message bulk, however few recipients it has (security N13).
HOURLY_BULK: Final = 200
HOUR: Final = timedelta(hours=1)
VOLUME_NAME: Final = "volume.sqlite"
MAX_TEXT: Final = 400  # an SMTP reply line is at most 512 octets (RFC 5321 4.5.3.1.5)
_CONTROLS = re.compile(r"[\x00-\x1f\x7f%]")
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def smtp_text(fr: str, en: str) -> str:
    """`fr / en` as one ASCII line: accents transliterated, controls and % removed."""
    text = unicodedata.normalize("NFKD", f"{fr} / {en}")
    text = text.encode("ascii", "ignore").decode("ascii")
    text = re.sub(r" {2,}", " ", _CONTROLS.sub(" ", text)).strip()
    return text[:MAX_TEXT]


@dataclass(frozen=True)
class Envelope:
    login: str | None  # SASL login (a people[].id); None when not authenticated
    mail_from: str
    recipients: tuple[str, ...]  # RCPT TO addresses, in order
    client: str | None = None  # the connecting server's address (rate limits only)


@dataclass(frozen=True)
class Verdict:
    action: str  # accept | reject | hold | unsubscribe
    rule: str
    smtp_code: int
    smtp_status: str
    text: str  # one ASCII line, French then English
    drop: tuple[str, ...] = ()  # envelope recipients to remove, as given
    add_headers: tuple[tuple[str, str], ...] = ()
    new_body: bytes | None = None  # the whole replacement body (CRLF), or None
    counts: Mapping[str, int] = field(default_factory=dict, hash=False)
    election: str | None = None
    # Headers to delete (every occurrence) before `add_headers` are added.
    remove_headers: tuple[str, ...] = ()
    # For "unsubscribe": the confirmation to send (to the sender only), if any.
    reply: EmailMessage | None = field(default=None, compare=False, hash=False)
    # For "unsubscribe": the copy for the DPO when it is not a plain opt-out (E2);
    # the voter's message is deferred, never dropped, when it cannot be sent.
    forward: EmailMessage | None = field(default=None, compare=False, hash=False)


def _verdict(
    action: str, rule: str, code: int, status: str, fr: str, en: str, **kw: object
) -> Verdict:
    return Verdict(action, rule, code, status, smtp_text(fr, en), **kw)  # type: ignore[arg-type]


def _reject(rule: str, fr: str, en: str, counts: Mapping[str, int], **kw: object) -> Verdict:
    code, status = (530, "5.7.0") if rule == "not_authenticated" else (550, "5.7.1")
    return _verdict(REJECT, rule, code, status, fr, en, counts=dict(counts), **kw)


def _header_values(msg: EmailMessage, name: str) -> list[str]:
    return [v for v in transparency.header_values(msg, name) if v]


# Every header whose addresses the recipients see (RFC 5322 3.6.2, 3.6.3 and 3.6.6;
# Mail-Followup-To and Mail-Reply-To are common extensions). Bcc and Resent-Bcc
# are not shown to the recipients.
ADDRESS_HEADERS: Final = (
    "To",
    "Cc",
    "Reply-To",
    "Resent-To",
    "Resent-Cc",
    "Resent-From",
    "Resent-Sender",
    "Mail-Followup-To",
    "Mail-Reply-To",
)
# Defects that say nothing about the addresses: raw UTF-8 in a display name or a
# local part (SMTPUTF8 clients). Any other defect means the parser had to guess.
_HARMLESS_DEFECTS: Final = ("UndecodableBytesDefect", "NonASCIILocalPartDefect")
# An address written inside a display name ("jean@x.fr" <...> or an encoded word):
# the recipients see it too.
_ADDRESS_IN_NAME = re.compile(r"[^\s@<>\"',;:()]+@[^\s@<>\"',;:()]+\.[^\s@<>\"',;:()]+")


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ADDRESSES = headerregistry.HeaderRegistry()
for _name in ADDRESS_HEADERS:
    _ADDRESSES.map_to_type(_name.lower(), headerregistry.AddressHeader)  # type: ignore[arg-type]


class UnreadableAddresses(ValueError):
    """An address header that cannot be parsed cleanly: its addresses cannot be counted."""

    def __init__(self, header: str) -> None:
        super().__init__(header)
        self.header = header


def visible_addresses(msg: EmailMessage) -> int:
    """Distinct addresses every recipient sees: To, Cc, Reply-To, Resent-*,
    Mail-Followup-To, and addresses written inside display names.

    UnreadableAddresses when a non-empty address header does not parse cleanly
    (a defect, an address without a local part or a domain, a parser error):
    the count would then be a guess, and Debian's strict email.utils returns
    nothing at all for such a header (CVE-2023-27043), so the guard never
    relies on it. Groups' empty lists (`undisclosed-recipients:;`) count none.
    """
    found: set[str] = set()
    for name in ADDRESS_HEADERS:
        if not _header_values(msg, name):
            continue
        try:
            for _, value in (kv for kv in msg.raw_items() if kv[0].lower() == name.lower()):
                found.update(_clean_addresses(_ADDRESSES(name, _unfold(value))))
        except UnreadableAddresses:
            raise
        except Exception:  # noqa: BLE001 - the parser itself failed: never a guess
            raise UnreadableAddresses(name) from None
    return len(found)


def _unfold(value: str) -> str:
    """A folded header value on one line (RFC 5322 2.2.3)."""
    return _FOLD.sub("", str(value))


def _clean_addresses(header: object) -> set[str]:
    name = str(getattr(header, "name", "") or "address")
    defects = [type(d).__name__ for d in getattr(header, "defects", ())]
    if any(d not in _HARMLESS_DEFECTS for d in defects):
        raise UnreadableAddresses(name)
    addresses = getattr(header, "addresses", None)
    if addresses is None:
        raise UnreadableAddresses(name)
    out: set[str] = set()
    for address in addresses:
        if not address.username or not address.domain:
            raise UnreadableAddresses(name)
        out.add(address.addr_spec.strip().lower())
        shown = address.display_name or ""
        out.update(m.lower() for m in _ADDRESS_IN_NAME.findall(shown))
    if not out and "@" in str(header):
        raise UnreadableAddresses(name)
    return out


def delivered_forms(address: str) -> set[str]:
    """The normalised mailbox an envelope address reaches, in every spelling Postfix
    treats alike: quotes around the local part, a trailing dot, the percent hack
    (`v%d@localhost`) and a bang path (`d!v@localhost`). Postfix is also told to
    refuse the last two (main.cf), this is the second line."""
    text = address.strip().removeprefix("<").removesuffix(">").strip()
    local, _, domain = text.rpartition("@")
    candidates = {text}
    if local:
        unquoted = local[1:-1] if len(local) > 1 and local[0] == local[-1] == '"' else local
        unquoted = re.sub(r"\\(.)", r"\1", unquoted)
        domain = domain.rstrip(".")
        candidates.add(f"{unquoted}@{domain}")
        if "%" in unquoted:
            user, _, via = unquoted.rpartition("%")
            candidates.add(f"{user}@{via.rstrip('.')}")
        if "!" in unquoted:
            via, _, user = unquoted.partition("!")
            candidates.add(f"{user}@{via.rstrip('.')}")
    out = set()
    for candidate in candidates:
        normal = tabular.normalise_email(candidate)
        if normal is not None:
            out.add(normal.rstrip("."))
    return out


def _in_domains(address: str, domains: tuple[str, ...]) -> bool:
    normal = tabular.normalise_email(address)
    if normal is None:
        return False
    host = normal.rpartition("@")[2].rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


class Guard:
    """Decides on each message. One per thread: SuppressionList is one SQLite connection."""

    def __init__(
        self,
        policies: Policies,
        *,
        suppression: SuppressionList | None,
        today: date,
        state_dir: Path | None = None,
        now: Callable[[], datetime] = clock.now,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        authserv_id: str | None = None,
    ) -> None:
        self.policies = policies
        self.suppression = suppression
        self.today = today
        self.state_dir = state_dir
        self.now = now
        self.max_message_bytes = max_message_bytes
        self.authserv_id = authserv_id
        self.mail = policies.baseline.mail
        self.party_domains = policies.baseline.party_domains

    # ------------------------------------------------------------ public
    def evaluate(self, envelope: Envelope, message: bytes) -> Verdict:
        """The verdict; a failure of the guard itself (a bug, an unreadable
        suppression list) is a temporary refusal (451 4.3.0, rule `guard_error`),
        never an unchecked acceptance."""
        try:
            return self._evaluate(envelope, message)
        except Exception:  # noqa: BLE001 - the sender's server retries later
            return _verdict(
                REJECT, "guard_error", 451, "4.3.0",
                "Erreur temporaire du controle du message, reessayez plus tard",
                "Temporary error while checking the message, try again later",
                counts={"recipients": len(envelope.recipients)},
            )  # fmt: skip

    def _evaluate(self, envelope: Envelope, message: bytes) -> Verdict:
        counts: dict[str, int] = {"recipients": len(envelope.recipients)}
        if len(message) > self.max_message_bytes:
            return _verdict(
                REJECT, "too_large", 552, "5.3.4",
                f"Message trop gros pour le controle (plus de {self.max_message_bytes} octets)",
                f"Message too large to be checked (over {self.max_message_bytes} bytes)",
                counts=counts,
            )  # fmt: skip
        msg = BytesParser(policy=email_policy.default).parsebytes(message)
        assert isinstance(msg, EmailMessage)
        if self._to_unsubscribe(envelope):
            return self._unsubscribe(envelope, msg, message, counts)
        if not self.mail.enabled:
            return _verdict(ACCEPT, "disabled", 250, "2.0.0", "Message accepte",
                            "Message accepted", counts=counts)  # fmt: skip
        chosen = self._election(envelope, msg, counts)
        if isinstance(chosen, Verdict):
            return chosen
        spoofed = self._sender_address(envelope, msg, chosen, counts)
        if spoofed is not None:
            return spoofed
        return self._rules(envelope, msg, chosen, counts)

    def is_active(self, election: Election) -> bool:
        """Before its retention due date and not under a legal hold."""
        if election.legal_hold:
            return False
        warn = self.policies.baseline.retention.warn_days
        phase = planning.status(election, self.today, warn).phase
        return phase in (planning.ACTIVE, planning.WARNING)

    # ------------------------------------------------------- unsubscribe
    def _to_unsubscribe(self, envelope: Envelope) -> bool:
        target = self.policies.baseline.organisation.unsubscribe.lower()
        rcpts = [tabular.normalise_email(r) for r in envelope.recipients]
        return bool(rcpts) and all(r == target for r in rcpts)

    def _unsubscribe(
        self, envelope: Envelope, msg: EmailMessage, raw: bytes, counts: dict[str, int]
    ) -> Verdict:
        """Record the opt-out; anything more than a plain opt-out also goes to the
        DPO (review E2). A bounce or an automatic reply goes nowhere."""
        reply = None
        recorded = aligned = 0
        forward = None
        sender = tabular.normalise_email(envelope.mail_from)
        if sender is not None and not unsubscribe.is_automatic(msg):
            if not unsubscribe.is_plain_optout(msg):
                forward = unsubscribe.dpo_copy(self.policies, msg, raw, self.now())
        if self.suppression is not None:
            done = unsubscribe.unsubscribe(
                self.policies,
                self.suppression,
                envelope.mail_from,
                msg,
                state_dir=self.state_dir,
                now=self.now(),
                client=envelope.client,
                authserv_id=self.authserv_id,
                forwarded=forward is not None,
            )
            if done.limited:
                return _verdict(
                    REJECT, "unsubscribe_rate", 450, "4.7.1",
                    "Trop de desinscriptions depuis votre serveur, reessayez plus tard",
                    "Too many unsubscribe messages from your server, try again later",
                    counts=counts,
                )  # fmt: skip
            reply, recorded, aligned = done.reply, int(done.recorded), int(done.authenticated)
        counts.update(
            unsubscribed=recorded,
            authenticated=aligned,
            confirmation=int(reply is not None),
            forwarded_to_dpo=int(forward is not None),
        )
        if forward is not None:
            fr, en = (
                "Desinscription enregistree, message transmis au DPO",
                ("Unsubscribe recorded, message passed on to the DPO"),
            )
        else:
            fr, en = "Desinscription enregistree", "Unsubscribe recorded"
        return _verdict(
            UNSUBSCRIBE, "unsubscribe", 250, "2.0.0", fr, en,
            counts=counts, reply=reply, forward=forward,
        )  # fmt: skip

    # ----------------------------------------------------------- rule 4
    def _election(
        self, envelope: Envelope, msg: EmailMessage, counts: dict[str, int]
    ) -> Election | Verdict:
        login = envelope.login
        if not login:
            return _reject(
                "not_authenticated",
                "Authentification requise : connectez-vous avec votre compte du parti",
                "Authentication required: log in with your party account",
                counts,
            )
        mine = [e for e in self.policies.elections if login in e.members]
        named = {v.strip().lower() for v in _header_values(msg, ELECTION_HEADER)}
        if len(named) > 1:
            return _reject(
                "election_ambiguous",
                f"Un seul en-tete {ELECTION_HEADER} par message",
                f"Only one {ELECTION_HEADER} header per message",
                counts,
            )
        if named:
            return self._named_election(named.pop(), mine, counts)
        active = [e for e in mine if self.is_active(e)]
        if len(active) == 1:
            return active[0]
        if active:
            ids = ", ".join(e.id for e in active[:5])
            return _reject(
                "election_ambiguous",
                f"Vous etes membre de plusieurs elections ({ids}) : ajoutez l'en-tete "
                f"{ELECTION_HEADER}: <id> au message",
                f"You are a member of several elections ({ids}): add the header "
                f"{ELECTION_HEADER}: <id> to the message",
                counts,
            )
        if mine:
            return self._inactive(mine[0] if len(mine) == 1 else None, counts)
        return _reject(
            "sender_not_member",
            "Votre compte n'est membre d'aucune election : envoi refuse",
            "Your account is not a member of any election: sending refused",
            counts,
        )

    def _sender_address(
        self, envelope: Envelope, msg: EmailMessage, election: Election, counts: dict[str, int]
    ) -> Verdict | None:
        """The login sends as itself (security N16): the envelope sender and every
        From address are the person's own policy address. Postfix checks the
        envelope too (smtpd_sender_login_maps); the From header is the guard's."""
        person = next((p for p in self.policies.baseline.people if p.id == envelope.login), None)
        own = (person.email or "").strip().lower() if person else ""
        try:
            shown = [
                a.addr_spec.lower()
                for name, value in msg.raw_items()
                if name.lower() in ("from", "sender")
                for a in getattr(_ADDRESSES("From", _unfold(value)), "addresses", ())
            ]
        except Exception:  # noqa: BLE001 - an unreadable From is nobody's own
            shown = [""]
        envelope_own = tabular.normalise_email(envelope.mail_from) == own
        if own and envelope_own and shown and all(a == own for a in shown):
            return None
        return _reject(
            "sender_address",
            "L'expediteur (From et MAIL FROM) doit etre votre propre adresse du parti",
            "The sender (From and MAIL FROM) must be your own party address",
            counts,
            election=election.id,
        )

    def _named_election(
        self, wanted: str, mine: list[Election], counts: dict[str, int]
    ) -> Election | Verdict:
        chosen = next((e for e in mine if e.id == wanted), None)
        if chosen is None:
            known = wanted if _ID.fullmatch(wanted) and self._known(wanted) else "inconnue/unknown"
            return _reject(
                "sender_not_member",
                f"Vous n'etes pas membre de l'election {known} ({ELECTION_HEADER}) : "
                "une equipe ne peut pas envoyer au nom d'une autre",
                f"You are not a member of election {known} ({ELECTION_HEADER}): "
                "one team cannot send for another",
                counts,
            )
        if not self.is_active(chosen):
            return self._inactive(chosen, counts)
        return chosen

    def _known(self, election_id: str) -> bool:
        return any(e.id == election_id for e in self.policies.elections)

    def _inactive(self, election: Election | None, counts: dict[str, int]) -> Verdict:
        if election is None:
            return _reject(
                "election_inactive",
                "Vos elections sont terminees ou gelees : envoi refuse",
                "Your elections have ended or are on legal hold: sending refused",
                counts,
            )
        due = election.retention_due.isoformat()
        return _reject(
            "election_inactive",
            f"L'election {election.id} est terminee (conservation echue le {due}) ou gelee : "
            "ses fichiers ne peuvent plus servir a envoyer",
            f"Election {election.id} has ended (retention due {due}) or is on legal hold: "
            "its files can no longer be mailed",
            counts,
            election=election.id,
        )

    # ------------------------------------------------------ rules 1,2,3,5
    def _rules(
        self, envelope: Envelope, msg: EmailMessage, election: Election, counts: dict[str, int]
    ) -> Verdict:
        limit = self.mail.max_visible_recipients
        try:
            visible = visible_addresses(msg)
        except UnreadableAddresses as exc:
            header = exc.header if exc.header in ADDRESS_HEADERS else "address"
            return _reject(
                "address_header",
                f"En-tete {header} illisible : corrigez les adresses (une virgule entre "
                "chaque, aucune en trop) ou mettez les destinataires en Cci",
                f"Unreadable {header} header: fix the addresses (one comma between each, "
                "none extra) or put the recipients in Bcc",
                counts,
                election=election.id,
            )
        counts["visible"] = visible
        if visible > limit:
            return _reject(
                "visible_recipients",
                f"{visible} adresses visibles en A et Cc (maximum {limit}) : mettez les "
                "destinataires en Cci",
                f"{visible} visible addresses in To and Cc (at most {limit}): put the "
                "recipients in Bcc",
                counts,
                election=election.id,
            )
        recent = self._recent_recipients(envelope)
        bulk = len(envelope.recipients) > limit or recent + len(envelope.recipients) > HOURLY_BULK
        counts["bulk"] = int(bulk)
        # Every message to someone outside the party carries the notice, a message
        # to one voter too (review E4): a mailer sending one message per voter.
        outside = any(not _in_domains(r, self.party_domains) for r in envelope.recipients)
        if bulk or outside:
            fix = self._transparency(msg, election, counts, bulk)
        else:
            fix = transparency.Rewrite()
        if isinstance(fix, Verdict):
            return fix
        drop = self._suppressed(envelope)
        counts["dropped"] = len(drop)
        kept = [r for r in envelope.recipients if r not in drop]
        base = Verdict(
            ACCEPT, "ok", 250, "2.0.0", smtp_text("Message accepte", "Message accepted"),
            drop=drop,
            add_headers=fix.add_headers,
            new_body=fix.new_body,
            counts=counts,
            election=election.id,
            remove_headers=(*INTERNAL_HEADERS, *fix.remove_headers),
        )  # fmt: skip
        if not kept:
            return replace(base, rule="suppressed")
        return self._attachments(msg, kept, base, counts)

    def _transparency(
        self, msg: EmailMessage, election: Election, counts: dict[str, int], bulk: bool
    ) -> transparency.Rewrite | Verdict:
        """A bulk message without the notice is refused (mode reject) or completed
        (mode add); a message to a few people outside the party is always completed."""
        block_ok = transparency.has_block(msg, self.policies, election)
        header_ok = transparency.has_list_unsubscribe(msg, self.policies)
        counts["block_added"] = 0
        if block_ok and header_ok:
            return transparency.Rewrite()
        unsub = self.policies.baseline.organisation.unsubscribe
        if bulk and self.mail.transparency != "add":
            missing_fr = "le bloc d'information complet" if not block_ok else ""
            missing_en = "the complete notice" if not block_ok else ""
            if not header_ok:
                missing_fr += (" et " if missing_fr else "") + "List-Unsubscribe"
                missing_en += (" and " if missing_en else "") + "List-Unsubscribe"
            return _reject(
                "transparency",
                f"Envoi groupe sans {missing_fr} : parti, election, DPO, CNIL, "
                f"desinscription ({unsub}) et List-Unsubscribe: <mailto:{unsub}> "
                "(docs/mailguard.md)",
                f"Bulk message without {missing_en}: party, election, DPO, CNIL, "
                f"unsubscribe ({unsub}) and List-Unsubscribe: <mailto:{unsub}>",
                counts,
                election=election.id,
            )
        return self._add_notice(msg, election, counts, block_ok, header_ok)

    def _add_notice(
        self,
        msg: EmailMessage,
        election: Election,
        counts: dict[str, int],
        block_ok: bool,
        header_ok: bool,
    ) -> transparency.Rewrite | Verdict:
        removed: tuple[str, ...] = ()
        added: tuple[tuple[str, str], ...] = ()
        body = None
        if not block_ok:
            named = _header_values(msg, DATASET_HEADER)
            try:
                chosen = transparency.datasets(election, named[0].strip() if named else None)
                block = transparency.notice(
                    self.policies,
                    election,
                    [d.origin for d in chosen],
                    self.mail.language,
                    [d.legal_basis for d in chosen],
                )
                rewrite = transparency.add_block(msg, block)
            except transparency.NoEmailOrigin:
                return self._cannot_add(
                    f"{DATASET_HEADER} nomme une liste electorale, qui ne contient aucune "
                    "adresse electronique",
                    f"{DATASET_HEADER} names an electoral list, which holds no e-mail address",
                    election,
                    counts,
                )
            except KeyError:
                return self._cannot_add(
                    f"{DATASET_HEADER} ne nomme aucun jeu de donnees de l'election",
                    f"{DATASET_HEADER} names no dataset of the election",
                    election,
                    counts,
                )
            except transparency.CannotAdd as exc:
                return self._cannot_add(str(exc), str(exc), election, counts)
            removed, added, body = rewrite.remove_headers, rewrite.add_headers, rewrite.new_body
            counts["block_added"] = 1
        if not header_ok:
            fix = transparency.list_unsubscribe_fix(msg, self.policies)
            removed += fix.remove_headers
            added += fix.add_headers
        return transparency.Rewrite(removed, added, body)

    def _cannot_add(self, fr: str, en: str, election: Election, counts: dict[str, int]) -> Verdict:
        return _reject(
            "transparency",
            f"Message sans bloc d'information, et il ne peut pas etre ajoute : {fr}",
            f"Message without the notice, which cannot be added: {en}",
            counts,
            election=election.id,
        )

    def _recent_recipients(self, envelope: Envelope) -> int:
        """Recipients this login sent to in the last hour, this message counted in
        from now on (security N13: many small messages are a mass mailing too)."""
        if self.state_dir is None or not envelope.login:
            return 0
        who = hashlib.sha256(f"isoloir-login:{envelope.login}".encode()).hexdigest()
        now = self.now()
        path = self.state_dir / "mailguard" / VOLUME_NAME
        with closing(unsubscribe.connect(path)) as db:
            db.execute("PRAGMA synchronous=OFF")  # a counter: losing it in a crash is harmless
            db.execute("CREATE TABLE IF NOT EXISTS sent (login TEXT, at TEXT, recipients INTEGER)")
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM sent WHERE at < ?", ((now - HOUR).isoformat(),))
                (recent,) = db.execute(
                    "SELECT COALESCE(SUM(recipients), 0) FROM sent WHERE login = ?", (who,)
                ).fetchone()
                db.execute(
                    "INSERT INTO sent VALUES (?, ?, ?)",
                    (who, now.isoformat(), len(envelope.recipients)),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return int(recent)

    def _suppressed(self, envelope: Envelope) -> tuple[str, ...]:
        """Recipients in the suppression list or among the mail opt-outs, compared
        in every form Postfix would deliver to the same mailbox (security N7)."""
        if self.suppression is None:
            return ()
        store = self.suppression
        optouts = self._optouts()
        try:
            out = []
            for rcpt in envelope.recipients:
                forms = delivered_forms(rcpt)
                if any(store.contains(f, None) for f in forms) or (
                    optouts is not None
                    and any(optouts.contains(store.digest("email", f)) for f in forms)
                ):
                    out.append(rcpt)
            return tuple(out)
        finally:
            if optouts is not None:
                optouts.close()

    def _optouts(self) -> unsubscribe.MailOptOuts | None:
        if self.state_dir is None:
            return None
        return unsubscribe.MailOptOuts.for_reading(unsubscribe.optouts_path(self.state_dir))

    def _attachments(
        self, msg: EmailMessage, kept: list[str], base: Verdict, counts: dict[str, int]
    ) -> Verdict:
        found = attachments.scan(msg)
        outside = sum(1 for r in kept if not _in_domains(r, self.party_domains))
        counts.update(
            attachments=found.attachments,
            attachments_tables=found.spreadsheets,
            attachments_personal=found.personal,
            attachments_unreadable=found.unreadable,
            recipients_outside=outside,
        )
        if not (found.flagged and outside):
            return replace(base, counts=counts)
        return replace(
            base,
            action=HOLD,
            rule="attachment_outside",
            text=smtp_text(
                "Message retenu : une piece jointe contient des donnees personnelles et part "
                "hors du parti ; un administrateur doit le liberer ou le supprimer",
                "Message held: an attachment holds personal data and leaves the party; an "
                "administrator must release or delete it",
            ),
            counts=counts,
        )
