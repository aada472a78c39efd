"""The transparency notice of a message leaving the party: who sends it, for
which election and purpose, on which legal basis, where the address came from,
how long it is kept (for who agrees to hear from the party again: until the
exchanges or the membership end, reviewed every `retention.permanent_review`),
the DPO, the rights (erasure and the complaint to the CNIL included) and how to
unsubscribe (CNIL, "Communication politique", reflexes 4 and 5; GDPR art. 13
and 14).

A message holds the notice when every body text part (text/plain and text/html,
not attachments) names the party, the election (its label or id), the
unsubscribe address, the DPO's address and the CNIL, and a `List-Unsubscribe`
header holds `mailto:<unsubscribe address>` (RFC 2369). The origin, the legal
basis and the retention are free text and not looked for: the added block
states them. Origins are worded truthfully for an e-mail (review E3): an
electoral list holds no e-mail address, so it is never given as the origin
of one.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.policy import SMTP

from isoloir.policy.durations import every
from isoloir.policy.model import Dataset, Election, Policies

LIST_UNSUBSCRIBE = "List-Unsubscribe"
# Top-level headers a rewritten single-part body may change.
CONTENT_HEADERS = ("MIME-Version", "Content-Type", "Content-Transfer-Encoding")
_SPACES = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_BODY_START = re.compile(r"<body(?:\s[^>]*)?>", re.IGNORECASE)
# Inline markup that hides text from the reader (security N13): an existing
# notice in an HTML part with any of these is not taken as shown. (A style
# sheet could hide it too; most mailing tools' HTML has one, so it is not
# refused on that ground: docs/mailguard.md says so.)
_HIDING = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0(?![.\d]*[1-9])"
    r"|font-size\s*:\s*0(?![.\d]*[1-9])|max-height\s*:\s*0(?![.\d]*[1-9])"
    r"|mso-hide\s*:\s*all|\shidden[\s=>/]|<template",
    re.IGNORECASE,
)
# The added notice overrides any style sheet (an inline !important declaration wins).
_SHOWN = (
    "display:block !important;visibility:visible !important;opacity:1 !important;"
    "font-size:14px !important;color:#000000 !important;background:#ffffff !important;"
    "max-height:none !important;overflow:visible !important"
)

# Where an e-mail address of each origin comes from, as the recipient reads it.
# `electoral_roll` has none: the list holds identity and postal address only
# (C. élect. L. 37, R. 16), so a message never names it (see `origins`).
ORIGINS = {
    "fr": {
        "opt_in_form": "un formulaire par lequel vous avez accepté d'être contacté(e)",
        "door_to_door": "notre rencontre lors du porte-à-porte, où vous nous l'avez donnée",
        "party_members": "votre adhésion au parti",
        "elected_officials_register": "vos coordonnées publiques d'élu(e)",
        "event_signup": "votre inscription à un événement du parti",
        "other": "une source que nous vous indiquerons sur simple demande à {rights}",
    },
    "en": {
        "opt_in_form": "a form by which you agreed to be contacted",
        "door_to_door": "our door-to-door visit, where you gave it to us",
        "party_members": "your membership of the party",
        "elected_officials_register": "your public contact details as an elected official",
        "event_signup": "your registration for one of the party's events",
        "other": "a source we will tell you on request to {rights}",
    },
}
NO_EMAIL_ORIGINS = frozenset({"electoral_roll"})
LEGAL_BASES = {
    "fr": {
        "consent": "votre consentement",
        "legitimate_interest": "l'intérêt légitime du parti à communiquer avec les électeurs",
        "legal_obligation": "une obligation légale",
    },
    "en": {
        "consent": "your consent",
        "legitimate_interest": "the party's legitimate interest in communicating with voters",
        "legal_obligation": "a legal obligation",
    },
}


class NoEmailOrigin(ValueError):
    """The named dataset's origin holds no e-mail address (an electoral list)."""


class CannotAdd(ValueError):
    """The block cannot be added to this message (no text part, signed, unknown charset)."""


@dataclass(frozen=True)
class Rewrite:
    """What the relay changes: headers removed (every occurrence), headers added, the body."""

    remove_headers: tuple[str, ...] = ()
    add_headers: tuple[tuple[str, str], ...] = ()
    new_body: bytes | None = None


def _flat(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def body_text_parts(msg: Message) -> list[Message]:
    """Leaf text/plain and text/html parts that are the message's body, not attachments."""
    parts = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_subtype() not in ("plain", "html"):
            continue
        if part.get_filename() or part.get_content_disposition() == "attachment":
            continue
        parts.append(part)
    return parts


def _raw_text(part: Message) -> str:
    """The decoded text of a part, markup kept."""
    raw = part.get_payload(decode=True)
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""


def part_text(part: Message) -> str:
    """The decoded text of a part (HTML tags removed); '' when it cannot be decoded."""
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    if part.get_content_subtype() == "html":
        text = html.unescape(_TAG.sub(" ", text))
    return text


def markers(policies: Policies, election: Election) -> tuple[str, str, tuple[str, str]]:
    org = policies.baseline.organisation
    return org.party, org.unsubscribe, (election.label, election.id)


def has_block(msg: Message, policies: Policies, election: Election) -> bool:
    """Every body text part names the party, the election, the unsubscribe
    address, the DPO's address and the CNIL (the complete notice's markers)."""
    parts = body_text_parts(msg)
    if not parts:
        return False
    party, unsubscribe, names = markers(policies, election)
    dpo = policies.baseline.organisation.dpo_contact.casefold()
    for part in parts:
        if part.get_content_subtype() == "html" and _HIDING.search(_raw_text(part)):
            return False  # a notice there may be hidden from the reader
        text = _flat(part_text(part))
        if _flat(party) not in text or unsubscribe.casefold() not in text:
            return False
        if dpo not in text or "cnil" not in text:
            return False
        if not any(_flat(n) in text for n in names):
            return False
    return True


def header_values(msg: Message, name: str) -> list[str]:
    """Raw values of every occurrence, unfolded."""
    wanted = name.lower()
    found = [value for key, value in msg.raw_items() if key.lower() == wanted]
    return [_SPACES.sub(" ", str(value)).strip() for value in found]


def mailto(policies: Policies) -> str:
    return f"<mailto:{policies.baseline.organisation.unsubscribe}?subject=unsubscribe>"


def has_list_unsubscribe(msg: Message, policies: Policies) -> bool:
    target = f"mailto:{policies.baseline.organisation.unsubscribe}".casefold()
    return any(target in v.casefold() for v in header_values(msg, LIST_UNSUBSCRIBE))


def list_unsubscribe_fix(msg: Message, policies: Policies) -> Rewrite:
    """The header rewrite giving List-Unsubscribe our mailto (kept first, others after)."""
    existing = [v for v in header_values(msg, LIST_UNSUBSCRIBE) if v]
    value = ", ".join([mailto(policies), *existing])
    removed = (LIST_UNSUBSCRIBE,) if existing or header_values(msg, LIST_UNSUBSCRIBE) else ()
    return Rewrite(remove_headers=removed, add_headers=((LIST_UNSUBSCRIBE, value),))


def datasets(election: Election, dataset: str | None) -> list[Dataset]:
    """The datasets an e-mail of this election may come from: the named one
    (KeyError when unknown; NoEmailOrigin for an electoral list), else every
    dataset whose origin can hold an e-mail address, in declared order."""
    if dataset is not None:
        named = election.dataset(dataset)
        if named.origin in NO_EMAIL_ORIGINS:
            raise NoEmailOrigin(named.name)
        return [named]
    return [d for d in election.datasets if d.origin not in NO_EMAIL_ORIGINS]


def origins(election: Election, dataset: str | None) -> list[str]:
    """Origin codes of `datasets` (once each)."""
    return list(dict.fromkeys(d.origin for d in datasets(election, dataset)))


def _due(day: date, lang: str) -> str:
    return day.isoformat() if lang == "en" else day.strftime("%d/%m/%Y")


def notice(
    policies: Policies,
    election: Election,
    origin_codes: Sequence[str],
    lang: str,
    legal_bases: Sequence[str] = (),
) -> str:
    """The complete block, as plain text lines, in `lang` (fr or en); the opt-out first."""
    org = policies.baseline.organisation
    lang = "en" if lang == "en" else "fr"
    names = {k: v.format(rights=org.rights_contact) for k, v in ORIGINS[lang].items()}
    codes = [c for c in dict.fromkeys(origin_codes) if c not in NO_EMAIL_ORIGINS]
    where = ", ".join(names.get(c, names["other"]) for c in codes) or names["other"]
    bases = LEGAL_BASES[lang]
    codes_b = list(legal_bases) or [d.legal_basis for d in election.datasets]
    basis = ", ".join(dict.fromkeys(bases.get(b, b) for b in codes_b))
    due = _due(election.retention_due, lang)
    # what is kept after the campaign is not kept forever (compliance review E7)
    review = every(policies.baseline.retention.permanent_review, lang)
    if lang == "en":
        lines = [
            f"To stop receiving our messages, write to {org.unsubscribe}"
            " (any message; your address is removed at once from the mail we send"
            " through our relay).",
            f"This message is sent by {org.party} ({org.controller_name},"
            f" {org.controller_address}), data controller, for: {election.label}.",
            f"Purpose: political communication for this election. Legal basis: {basis}.",
            f"Where your address comes from: {where}.",
            f"Kept until {due} at the latest; if you agree to hear from us again, until you"
            f" end our exchanges or your membership, and reviewed {review}.",
            f"Data protection officer: {org.dpo_contact}.",
            "Your rights: access, rectification, erasure, restriction, and objection at any"
            f" time: write to {org.rights_contact}. You may lodge a complaint with the CNIL"
            " (www.cnil.fr).",
        ]
    else:
        lines = [
            f"Pour ne plus recevoir nos messages, écrivez à {org.unsubscribe}"
            " (tout message ; votre adresse est aussitôt retirée des envois passant par"
            " notre relais).",
            f"Ce message vous est envoyé par {org.party} ({org.controller_name},"
            f" {org.controller_address}), responsable du traitement, pour : {election.label}.",
            f"Finalité : communication politique pour cette élection. Base légale : {basis}.",
            f"Origine de votre adresse : {where}.",
            f"Conservation : jusqu'au {due} au plus tard ; si vous acceptez d'être"
            " recontacté(e), jusqu'à la fin de nos échanges ou de votre adhésion, avec un"
            f" réexamen {review}.",
            f"Délégué à la protection des données : {org.dpo_contact}.",
            "Vos droits : accès, rectification, effacement, limitation, opposition à tout"
            f" moment ; écrivez à {org.rights_contact}. Vous pouvez introduire une"
            " réclamation auprès de la CNIL (www.cnil.fr).",
        ]
    return "\n".join(["-- ", *lines])


def _decode(raw: bytes, charset: str) -> str:
    """The part's text in its declared charset; an "ASCII" part holding 8-bit text
    (a common mislabel) is read as UTF-8, else Latin-1."""
    tries = [charset]
    if charset.lower() in ("us-ascii", "ascii"):
        tries += ["utf-8", "latin-1"]
    for name in tries:
        try:
            return raw.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    raise CannotAdd("a text part's charset is unknown or does not match its content")


def _add_to_part(part: Message, block: str) -> None:
    if not isinstance(part, EmailMessage):
        raise CannotAdd("the message could not be read as MIME")
    charset = part.get_content_charset() or "us-ascii"
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        raise CannotAdd("a text part has no readable content")
    text = _decode(raw, charset)
    if part.get_content_subtype() == "html":
        # At the top of the body, before anything the sender wrote: no element of
        # theirs left open can wrap (and hide) it; its inline style wins over
        # their style sheets (security N13).
        snippet = (
            f'<div style="{_SHOWN}"><p style="{_SHOWN}">'
            + html.escape(block).replace("\n", "<br>\n")
            + "</p></div><hr>\n"
        )
        start = _BODY_START.search(text)
        cut = start.end() if start else 0
        new = text[:cut] + snippet + text[cut:]
        part.set_content(new, subtype="html", charset="utf-8", cte="quoted-printable")
    else:
        new = text.rstrip("\r\n") + "\n\n" + block + "\n"
        part.set_content(new, subtype="plain", charset="utf-8", cte="quoted-printable")


def _serialise_body(msg: EmailMessage) -> bytes:
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=SMTP).flatten(msg)
    data = buffer.getvalue()
    cut = data.find(b"\r\n\r\n")
    return data[cut + 4 :] if cut >= 0 else b""


def add_block(msg: EmailMessage, block: str) -> Rewrite:
    """Append `block` to every body text part of `msg` (changed in place).

    Returns the new body (CRLF line ends, as SMTP carries it) and the top-level
    content headers to replace when the message is a single part.
    """
    for sub in msg.walk():
        if sub.get_content_type() in ("multipart/signed", "multipart/encrypted"):
            raise CannotAdd("the message is signed or encrypted: add the block before signing")
    parts = body_text_parts(msg)
    if not parts:
        raise CannotAdd("the message has no text part to add the block to")
    before = {h: header_values(msg, h) for h in CONTENT_HEADERS}
    for part in parts:
        _add_to_part(part, block)
    removed: list[str] = []
    added: list[tuple[str, str]] = []
    for name in CONTENT_HEADERS:
        now = header_values(msg, name)
        if now != before[name]:
            removed.append(name)
            added += [(name, v) for v in now]
    return Rewrite(tuple(removed), tuple(added), _serialise_body(msg))
