"""Deletion certificates: what a purge destroyed and kept, signed with Ed25519.

The file is the canonical pretty JSON of `{"certificate": {...}, "signature":
{...}}` (sorted keys, two-space indent, UTF-8, final newline). The signature
covers the compact canonical JSON of the `certificate` object. Verification
re-serialises the document and requires the exact same bytes, so changing any
byte of the file (even white space) fails, then checks the signature and the
content (counts, dates, the signer's key).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from isoloir import i18n, safeio
from isoloir.i18n import N_
from isoloir.retention import keys
from isoloir.textsafe import escape_controls, escape_value

FORMAT = "isoloir-deletion-certificate/1"
ALGORITHM = "Ed25519"
PUBLIC_KEY_FILE = "retention-signing.pub.pem"
UNDECLARED = "_undeclared"  # the election's folder outside its datasets (purge.UNDECLARED)

DATASET_COUNTS = (
    "objects",
    "versions",
    "delete_markers",
    "bucket_bytes",
    "files",
    "share_bytes",
    "directories",
    "tables_read",
    "tables_unreadable",
    "rows_read",
    "contacts_kept",
    "opt_outs",
    "suppression_entries_added",
)
TOTALS = (
    "objects",
    "versions",
    "delete_markers",
    "files",
    "bytes",
    "contacts_kept",
    "suppression_entries_added",
)
REQUIRED = (
    "format",
    "run_id",
    "election",
    "datasets",
    "totals",
    "kept",
    "key",
    "started_at",
    "finished_at",
    "host",
    "agent_version",
    "journal",
    "signer",
)


MAX_CERTIFICATE_BYTES = 4 * 1024 * 1024
MAX_KEY_BYTES = 64 * 1024


class CertificateError(ValueError):
    """The certificate does not verify; the message says why."""


class UnreadableError(ValueError):
    """A certificate or key file cannot be read: missing, not a regular file, too large."""


def read_regular(path: Path, what: str, limit: int) -> bytes:
    """The bytes of a regular file, in bounded time and memory (isoloir.safeio):
    the open never blocks, and a directory, FIFO, socket or device is refused
    by its type before any read."""
    try:
        return safeio.read_regular(path, what, limit)
    except safeio.UnreadableFile as exc:
        raise UnreadableError(str(exc)) from None


def public_key_from(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (UnreadableError says why not)."""
    data = read_regular(path, "public key", MAX_KEY_BYTES)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise UnreadableError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UnreadableError(f"{path}: not an Ed25519 public key")
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """`sha256:<hex>` of the raw public key, as printed and pinned."""
    return "sha256:" + keys.public_key_id(key)


def normalise_fingerprint(value: str) -> str:
    """Accept `sha256:HEX`, bare HEX, upper case, colons: `sha256:<64 lower hex>`."""
    text = value.strip().lower()
    text = text.removeprefix("sha256:").replace(":", "")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise UnreadableError(
            f"fingerprint {value!r} is not a SHA-256 (64 hexadecimal digits, optionally "
            "prefixed sha256:)"
        )
    return "sha256:" + text


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def render_file(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def totals(datasets: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    def total(name: str) -> int:
        return sum(int(d[name]) for d in datasets)

    return {
        "objects": total("objects"),
        "versions": total("versions"),
        "delete_markers": total("delete_markers"),
        "files": total("files"),
        "bytes": total("bucket_bytes") + total("share_bytes"),
        "contacts_kept": total("contacts_kept"),
        "suppression_entries_added": total("suppression_entries_added"),
    }


def sign(body: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    signature = key.sign(canonical(body))
    return {
        "certificate": dict(body),
        "signature": {
            "algorithm": ALGORITHM,
            "public_key_sha256": keys.public_key_id(key.public_key()),
            "value": base64.b64encode(signature).decode("ascii"),
        },
    }


def write(path: Path, document: Mapping[str, Any], public_key: Ed25519PublicKey) -> None:
    """Write the certificate atomically (0644) and the public key beside it.

    An existing certificate is never replaced (CertificateError): each run has
    its own file name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, render_file(document), replace=False)
    write_public_key(path.parent, public_key)


def write_public_key(directory: Path, public_key: Ed25519PublicKey) -> None:
    """The signing key's public half beside the certificates (a convenience copy)."""
    pub = directory / PUBLIC_KEY_FILE
    pem = keys.public_pem(public_key)
    if not pub.exists() or pub.read_bytes() != pem:
        _atomic(pub, pem)


def _atomic(path: Path, data: bytes, replace: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if it exists
    except FileExistsError:
        raise CertificateError(f"{path} already exists: a certificate is never replaced") from None
    finally:
        os.unlink(tmp)


# Reasons the purge writes into `key.deferred_reason` as fixed English text
# (retention/purge.py); shown translated. Others hold values and stay as written.
KNOWN_DEFERRALS = frozenset({N_("the bucket has no SSE-KMS default key")})


class Reason(str):
    """A verification reason: the English text (stderr, logs) that also knows its
    gettext template and values, so the banner of a French certificate is French
    (CLI review N8). A value that is itself a Reason is translated too."""

    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, **params: Any) -> Reason:
        text = msgid.format_map(params) if params else msgid
        made = super().__new__(cls, text)
        made.msgid = msgid
        made.params = params
        return made

    def render(self, lang: str) -> str:
        values = {k: translated(v, lang) for k, v in self.params.items()}
        template = i18n.gettext_for(lang, self.msgid)
        return template.format_map(values) if values else template


def translated(text: Any, lang: str) -> Any:
    """`text` in `lang` when it is a Reason, else unchanged."""
    return text.render(lang) if isinstance(text, Reason) else text


@dataclass
class Verification:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    document: dict[str, Any] | None = None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_content(body: Mapping[str, Any]) -> list[str]:
    """Content checks beyond the signature: shape, counts, totals, dates."""
    problems: list[str] = []
    for name in REQUIRED:
        if name not in body:
            problems.append(Reason(N_("missing field {name!r}"), name=name))
    if problems:
        return problems
    if body["format"] != FORMAT:
        problems.append(Reason(N_("unknown format {format!r}"), format=body["format"]))
    datasets = body["datasets"]
    if not isinstance(datasets, list):
        return [*problems, Reason(N_("datasets is not a list"))]
    for ds in datasets:
        for name in DATASET_COUNTS:
            if not _is_count(ds.get(name)):
                problems.append(
                    Reason(
                        N_("dataset {dataset!r}: {field} is not a count"),
                        dataset=ds.get("name"),
                        field=name,
                    )
                )
        if _is_count(ds.get("objects")) and _is_count(ds.get("versions")):
            if ds["objects"] > ds["versions"] + ds.get("delete_markers", 0):
                problems.append(
                    Reason(
                        N_("dataset {dataset!r}: more objects than versions"),
                        dataset=ds.get("name"),
                    )
                )
    if not problems:
        expected = totals(datasets)
        if body["totals"] != expected:
            problems.append(Reason(N_("totals do not add up to the datasets")))
    try:
        start = datetime.fromisoformat(body["started_at"])
        end = datetime.fromisoformat(body["finished_at"])
        if end < start:
            problems.append(Reason(N_("finished before it started")))
    except (TypeError, ValueError):
        problems.append(Reason(N_("start or end time is not ISO-8601")))
    key = body["key"]
    if not isinstance(key, dict) or not (key.get("deletion_date") or key.get("deferred_reason")):
        problems.append(Reason(N_("key: neither a deletion date nor the reason it was deferred")))
    elif key.get("deletion_date"):
        try:
            date.fromisoformat(str(key["deletion_date"])[:10])
        except ValueError:
            problems.append(Reason(N_("key deletion date is not a date")))
    journal = body["journal"]
    if not isinstance(journal, dict) or len(str(journal.get("sha256", ""))) != 64:
        problems.append(Reason(N_("journal hash missing")))
    return problems


def verify_bytes(data: bytes, public_key: Ed25519PublicKey) -> Verification:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        # RecursionError: thousands of nested brackets (CLI review N5)
        return Verification(False, [Reason(N_("not a JSON document"))])
    if not isinstance(document, dict) or set(document) != {"certificate", "signature"}:
        return Verification(False, [Reason(N_("not a signed certificate"))])
    if render_file(document) != data:
        return Verification(
            False, [Reason(N_("not in canonical form: the file was edited"))], document
        )
    body, sig = document["certificate"], document["signature"]
    if not isinstance(body, dict) or not isinstance(sig, dict):
        return Verification(False, [Reason(N_("not a signed certificate"))], document)
    reasons: list[str] = []
    if sig.get("algorithm") != ALGORITHM:
        reasons.append(Reason(N_("signature algorithm is not {algorithm}"), algorithm=ALGORITHM))
    key_id = keys.public_key_id(public_key)
    if sig.get("public_key_sha256") != key_id:
        reasons.append(Reason(N_("signed with another key than the one given")))
    signer = body.get("signer")
    if not isinstance(signer, dict) or signer.get("public_key_sha256") != key_id:
        reasons.append(Reason(N_("the certificate names another signer")))
    try:
        public_key.verify(
            base64.b64decode(str(sig.get("value", "")), validate=True), canonical(body)
        )
    except (InvalidSignature, ValueError):
        reasons.append(Reason(N_("signature does not match the content")))
    reasons += check_content(body)
    return Verification(not reasons, reasons, document)


def verify_file(path: Path, public_key_path: Path | None = None) -> Verification:
    """Verify with the given key, else the one beside the certificate (read first).

    The key beside the certificate proves nothing on its own (whoever can
    write the folder can replace both): the CLI says "unverified" unless the
    key is pinned (`--public-key`, `--fingerprint`, `--host-key`).
    """
    try:
        data = read_regular(path, "certificate", MAX_CERTIFICATE_BYTES)
    except UnreadableError as exc:
        return Verification(False, [str(exc)])
    pub = public_key_path or path.parent / PUBLIC_KEY_FILE
    try:
        public_key = public_key_from(pub)
    except UnreadableError as exc:
        return Verification(
            False, [Reason(N_("cannot use the public key: {error}"), error=str(exc))]
        )
    return verify_bytes(data, public_key)


# ------------------------------------------------------------------ rendering
_MONTHS_FR = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


def _date_fr(value: str | None) -> str:
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    day = "1er" if moment.day == 1 else str(moment.day)
    text = f"{day} {_MONTHS_FR[moment.month - 1]} {moment.year}"
    if "T" in value:
        text += f" à {moment.strftime('%H:%M')} UTC"
    return text


def _date_en(value: str | None) -> str:
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    text = f"{moment.day} {_MONTHS_EN[moment.month - 1]} {moment.year}"
    if "T" in value:
        text += f" at {moment.strftime('%H:%M')} UTC"
    return text


_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _n_fr(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def _n_en(value: int) -> str:
    return f"{value:,}"


def render(
    document: Mapping[str, Any],
    lang: str = "fr",
    verified: bool | None = None,
    reasons: Sequence[str] = (),
    key_note: str | None = None,
) -> str:
    """Markdown for the data-protection officer, in French or English (the texts come
    from the gettext catalogue; numbers and dates are written the language's way).

    When verification failed (`verified=False`) the document opens with a
    banner giving the reasons, so a forwarded copy cannot pass for a valid one.
    `key_note` says which key the verification used.

    Every string of the document, the reasons and the key note is shown with its
    control characters escaped: a tampered certificate is read by `certificate
    show` in a terminal, where ESC sequences would clear or recolour the screen.
    """
    lang = i18n.language_or_default(lang)
    _ = i18n.translator(lang).gettext
    body = escape_value(document["certificate"])
    text = _render(body, verified, lang)
    if key_note:
        note = escape_controls(translated(key_note, lang))
        text += _("Key used for the verification: {key}.").format(key=note) + "\n"
    if verified is False:
        text = _banner(lang, [escape_controls(translated(r, lang)) for r in reasons]) + text
    return text


def _banner(lang: str, reasons: Sequence[str]) -> str:
    _ = i18n.translator(lang).gettext
    why = "; ".join(reasons) or _("verification failed")
    return (
        _(
            "> **⚠ THIS CERTIFICATE IS NOT VALID**: {why}. Do not forward it as proof of "
            "destruction."
        ).format(why=why)
        + "\n\n"
    )


def _render(c: Mapping[str, Any], verified: bool | None, lang: str) -> str:
    _ = i18n.translator(lang).gettext
    date = _date_fr if lang == "fr" else _date_en
    n = _n_fr if lang == "fr" else _n_en
    e = c["election"]
    t = c["totals"]
    org = c.get("organisation", {})
    lines = [
        _("# Deletion certificate — {label}").format(label=e.get("label") or e["id"]),
        "",
        _("Election: **{id}**. Destruction date set by the retention policy: {due}.").format(
            id=e["id"], due=date(e.get("retention_due"))
        ),
        _("Data controller: {controller}. Data-protection officer: {dpo}.").format(
            controller=org.get("controller", "—"), dpo=org.get("dpo_contact", "—")
        ),
        "",
        _(
            "Operation run from {start} to {end} on host `{host}` by the Isoloir agent {version}."
        ).format(
            start=date(c["started_at"]),
            end=date(c["finished_at"]),
            host=c["host"],
            version=c["agent_version"],
        ),
        "",
        _("## Data destroyed"),
        "",
        "| "
        + " | ".join(
            [
                _("Dataset"),
                _("Objects"),
                _("Versions"),
                _("Delete markers"),
                _("Share files"),
                _("Bytes"),
                _("Contacts kept"),
                _("Opt-outs recorded"),
            ]
        )
        + " |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in c["datasets"]:
        name = _("(outside the declared datasets)") if d["name"] == UNDECLARED else d["name"]
        lines.append(
            f"| {name} | {n(d['objects'])} | {n(d['versions'])} | "
            f"{n(d['delete_markers'])} | {n(d['files'])} | "
            f"{n(d['bucket_bytes'] + d['share_bytes'])} | {n(d['contacts_kept'])} | "
            f"{n(d['suppression_entries_added'])} |"
        )
    lines += [
        f"| **{_('Total')}** | {n(t['objects'])} | {n(t['versions'])} | "
        f"{n(t['delete_markers'])} | {n(t['files'])} | {n(t['bytes'])} | "
        f"{n(t['contacts_kept'])} | {n(t['suppression_entries_added'])} |",
        "",
        _(
            "Every object version and every delete marker of the bucket was deleted, and so "
            "were the share's files, for each campaign-specific dataset."
        ),
        "",
        # What the certificate does not prove (compliance review, E9).
        _(
            "Scope: this certificate covers only the storage Isoloir manages for this "
            "election, its bucket and its share folder. It does not cover copies made "
            "elsewhere: computers and phones, mailboxes, mailing or SMS providers and other "
            "processors, nor disk blocks the host has not yet overwritten."
        ),
        "",
        _("## Data kept"),
        "",
    ]
    if any(d.get("name") == UNDECLARED for d in c["datasets"]):
        at = len(lines) - 5  # after the sentence on the bucket and the share
        lines[at:at] = [
            _(
                "Every file of the election's share folder outside the permanent datasets was "
                "deleted too."
            ),
            "",
        ]
    kept = c["kept"]
    lines.append(
        _(
            "- Contacts who explicitly agreed to be contacted again: {count}, copied into the "
            "permanent contacts store `{store}`, limited to the columns {columns}."
        ).format(
            count=n(t["contacts_kept"]),
            store=kept.get("contacts_store", "—"),
            columns=", ".join(kept.get("contacts_columns", [])) or "—",
        )
    )
    lines.append(
        _(
            "- Opt-outs: {count} HMAC-SHA256 fingerprints (normalised e-mail address or phone "
            "number) added to the opt-out list, which outlives every election; no data in "
            "clear is kept there."
        ).format(count=n(t["suppression_entries_added"]))
    )
    unrecorded = sum(
        int(d.get("opt_outs_without_identifier", 0) or 0)
        for d in c["datasets"]
        if isinstance(d, Mapping)
    )
    if unrecorded:
        lines.append(
            _(
                "- Opt-out rows without a usable e-mail address or phone number: {count}; they "
                "could not be recorded in the opt-out list."
            ).format(count=n(unrecorded))
        )
    permanent = kept.get("permanent_datasets") or []
    if permanent:
        lines.append(
            _("- Permanent datasets, not destroyed: {names}.").format(names=", ".join(permanent))
        )
    for d, loss in accepted_losses(c):
        lines.append(
            _(
                "- Loss accepted by an administrator ({dataset}): `{source}` destroyed without "
                "extraction ({reason})."
            ).format(dataset=d, source=loss.get("source"), reason=loss.get("reason"))
        )
    key = c["key"]
    lines += ["", _("## Encryption key (crypto-shredding)"), ""]
    if key.get("deletion_date"):
        lines.append(
            _(
                "The election's KMS key `{key}` is scheduled for deletion on {date} (after "
                "{days} days): after that date, any leftover copy encrypted with it is "
                "unreadable."
            ).format(
                key=key.get("key_id", "—"),
                date=date(key["deletion_date"]),
                days=key.get("window_days", "—"),
            )
        )
    else:
        deferred = key.get("deferred_reason", "—")
        lines.append(
            _("Key deletion deferred: {reason}.").format(
                reason=_(deferred) if deferred in KNOWN_DEFERRALS else deferred
            )
        )
    j = c["journal"]
    lines += [
        "",
        _("## Integrity"),
        "",
        _("Journal of the operation: {steps} steps, SHA-256 fingerprint `{sha}`.").format(
            steps=j.get("steps"), sha=j.get("sha256")
        ),
        _("Ed25519 signature, public key fingerprint `{fingerprint}`.").format(
            fingerprint=c["signer"]["public_key_sha256"]
        ),
    ]
    if verified is not None:
        lines.append(
            _("Signature and content **verified**.") if verified else _("**Verification FAILED.**")
        )
    return "\n".join(lines) + "\n"


def accepted_losses(c: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(dataset, {source, reason, accepted_at}) of the tables an administrator let go unread."""
    return [
        (str(d.get("name")), loss)
        for d in c.get("datasets", [])
        if isinstance(d, Mapping)
        for loss in d.get("accepted_losses") or []
        if isinstance(loss, Mapping)
    ]
