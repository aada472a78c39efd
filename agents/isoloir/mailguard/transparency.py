"""The transparency notice of a bulk message: who sends it, for which election,
where the address came from, how to unsubscribe (CNIL, "Communication
politique", reflexes 4 and 5).

A message holds the notice when every body text part (text/plain and text/html,
not attachments) names the party, the election (its label or id) and the
unsubscribe address, and a `List-Unsubscribe` header holds
`mailto:<unsubscribe address>` (RFC 2369). The origin is not looked for: it is
free text; the added block states it.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.policy import SMTP

from isoloir.policy.model import Election, Policies

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

ORIGINS = {
    "fr": {
        "electoral_roll": "la liste électorale",
        "opt_in_form": "un formulaire où vous avez accepté d'être contacté(e)",
        "door_to_door": "une rencontre lors du porte-à-porte",
        "party_members": "le fichier des adhérents",
        "elected_officials_register": "le répertoire national des élus",
        "event_signup": "une inscription à un événement",
        "other": "un fichier déclaré au registre des traitements",
    },
    "en": {
        "electoral_roll": "the electoral roll",
        "opt_in_form": "a form where you agreed to be contacted",
        "door_to_door": "a door-to-door visit",
        "party_members": "the membership file",
        "elected_officials_register": "the national register of elected officials",
        "event_signup": "an event sign-up",
        "other": "a file declared in the record of processing",
    },
}


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
    """Every body text part names the party, the election and the unsubscribe address."""
    parts = body_text_parts(msg)
    if not parts:
        return False
    party, unsubscribe, names = markers(policies, election)
    for part in parts:
        if part.get_content_subtype() == "html" and _HIDING.search(_raw_text(part)):
            return False  # a notice there may be hidden from the reader
        text = _flat(part_text(part))
        if _flat(party) not in text or unsubscribe.casefold() not in text:
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


def origins(election: Election, dataset: str | None) -> list[str]:
    """Origin codes: the named dataset's, else every dataset's (declared order, once each)."""
    if dataset is not None:
        return [election.dataset(dataset).origin]  # KeyError: unknown dataset
    return list(dict.fromkeys(d.origin for d in election.datasets))


def notice(policies: Policies, election: Election, origin_codes: Sequence[str], lang: str) -> str:
    """The block, as plain text lines, in `lang` (fr or en)."""
    org = policies.baseline.organisation
    names = ORIGINS["en" if lang == "en" else "fr"]
    where = ", ".join(names.get(c, names["other"]) for c in origin_codes) or names["other"]
    if lang == "en":
        lines = [
            f"This message is sent by {org.party} ({org.controller_name},"
            f" {org.controller_address}), data controller, for: {election.label}.",
            f"Where your address comes from: {where}.",
            f"To stop receiving our messages, write to {org.unsubscribe}"
            " (any message; you are removed at once).",
            f"Your rights (access, rectification, objection): {org.rights_contact}.",
        ]
    else:
        lines = [
            f"Ce message vous est envoyé par {org.party} ({org.controller_name},"
            f" {org.controller_address}), responsable du traitement, pour : {election.label}.",
            f"Origine de vos coordonnées : {where}.",
            f"Pour ne plus recevoir nos messages, écrivez à {org.unsubscribe}"
            " (tout message ; vous êtes retiré(e) aussitôt).",
            f"Vos droits (accès, rectification, opposition) : {org.rights_contact}.",
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
