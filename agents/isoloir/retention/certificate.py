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
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from isoloir.retention import keys

FORMAT = "isoloir-deletion-certificate/1"
ALGORITHM = "Ed25519"
PUBLIC_KEY_FILE = "retention-signing.pub.pem"

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
    """The bytes of a regular file, in bounded time and memory.

    The open never blocks (O_NONBLOCK: a FIFO has no writer), and a directory,
    FIFO, socket or device is refused by its fstat type before any read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise UnreadableError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UnreadableError(f"{path}: is a directory, not a {what}")
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableError(
                f"{path}: not a regular file (FIFO, socket or device), not a {what}"
            )
        if st.st_size > limit:
            raise UnreadableError(f"{path}: larger than {limit} bytes, not a {what}")
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnreadableError(f"{path}: larger than {limit} bytes, not a {what}")
    return data


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
            problems.append(f"missing field {name!r}")
    if problems:
        return problems
    if body["format"] != FORMAT:
        problems.append(f"unknown format {body['format']!r}")
    datasets = body["datasets"]
    if not isinstance(datasets, list):
        return [*problems, "datasets is not a list"]
    for ds in datasets:
        for name in DATASET_COUNTS:
            if not _is_count(ds.get(name)):
                problems.append(f"dataset {ds.get('name')!r}: {name} is not a count")
        if _is_count(ds.get("objects")) and _is_count(ds.get("versions")):
            if ds["objects"] > ds["versions"] + ds.get("delete_markers", 0):
                problems.append(f"dataset {ds.get('name')!r}: more objects than versions")
    if not problems:
        expected = totals(datasets)
        if body["totals"] != expected:
            problems.append("totals do not add up to the datasets")
    try:
        start = datetime.fromisoformat(body["started_at"])
        end = datetime.fromisoformat(body["finished_at"])
        if end < start:
            problems.append("finished before it started")
    except (TypeError, ValueError):
        problems.append("start or end time is not ISO-8601")
    key = body["key"]
    if not isinstance(key, dict) or not (key.get("deletion_date") or key.get("deferred_reason")):
        problems.append("key: neither a deletion date nor the reason it was deferred")
    elif key.get("deletion_date"):
        try:
            date.fromisoformat(str(key["deletion_date"])[:10])
        except ValueError:
            problems.append("key deletion date is not a date")
    journal = body["journal"]
    if not isinstance(journal, dict) or len(str(journal.get("sha256", ""))) != 64:
        problems.append("journal hash missing")
    return problems


def verify_bytes(data: bytes, public_key: Ed25519PublicKey) -> Verification:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Verification(False, ["not a JSON document"])
    if not isinstance(document, dict) or set(document) != {"certificate", "signature"}:
        return Verification(False, ["not a signed certificate"])
    if render_file(document) != data:
        return Verification(False, ["not in canonical form: the file was edited"], document)
    body, sig = document["certificate"], document["signature"]
    if not isinstance(body, dict) or not isinstance(sig, dict):
        return Verification(False, ["not a signed certificate"], document)
    reasons: list[str] = []
    if sig.get("algorithm") != ALGORITHM:
        reasons.append(f"signature algorithm is not {ALGORITHM}")
    key_id = keys.public_key_id(public_key)
    if sig.get("public_key_sha256") != key_id:
        reasons.append("signed with another key than the one given")
    signer = body.get("signer")
    if not isinstance(signer, dict) or signer.get("public_key_sha256") != key_id:
        reasons.append("the certificate names another signer")
    try:
        public_key.verify(
            base64.b64decode(str(sig.get("value", "")), validate=True), canonical(body)
        )
    except (InvalidSignature, ValueError):
        reasons.append("signature does not match the content")
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
        return Verification(False, [f"cannot use the public key: {exc}"])
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


def _n_fr(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def render(
    document: Mapping[str, Any],
    lang: str = "fr",
    verified: bool | None = None,
    reasons: Sequence[str] = (),
    key_note: str | None = None,
) -> str:
    """Markdown for the data-protection officer (French) or an English summary.

    When verification failed (`verified=False`) the document opens with a
    banner giving the reasons, so a forwarded copy cannot pass for a valid one.
    `key_note` says which key the verification used.
    """
    body = document["certificate"]
    text = _render_fr(body, verified) if lang == "fr" else _render_en(body, verified)
    if key_note:
        text += (
            f"Clé utilisée pour la vérification : {key_note}.\n"
            if lang == "fr"
            else f"key used for verification: {key_note}\n"
        )
    if verified is False:
        text = _banner(lang, reasons) + text
    return text


def _banner(lang: str, reasons: Sequence[str]) -> str:
    why = "; ".join(reasons) or "verification failed"
    if lang == "fr":
        return (
            f"> **⚠ CE CERTIFICAT N'EST PAS VALIDE** : {why}. Ne le transmettez pas comme "
            "preuve de destruction.\n\n"
        )
    return f"WARNING: THIS CERTIFICATE IS NOT VALID: {why}.\n\n"


def _render_fr(c: Mapping[str, Any], verified: bool | None) -> str:
    e = c["election"]
    t = c["totals"]
    org = c.get("organisation", {})
    lines = [
        f"# Certificat de destruction — {e.get('label') or e['id']}",
        "",
        f"Élection : **{e['id']}**. Date de destruction prévue par la politique de "
        f"conservation : {_date_fr(e.get('retention_due'))}.",
        f"Responsable du traitement : {org.get('controller', '—')}. "
        f"Délégué à la protection des données : {org.get('dpo_contact', '—')}.",
        "",
        f"Opération exécutée du {_date_fr(c['started_at'])} au {_date_fr(c['finished_at'])} "
        f"sur l'hôte `{c['host']}` par l'agent Isoloir {c['agent_version']}.",
        "",
        "## Données détruites",
        "",
        "| Jeu de données | Objets | Versions | Marqueurs de suppression | Fichiers du partage "
        "| Octets | Contacts conservés | Désinscriptions enregistrées |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in c["datasets"]:
        lines.append(
            f"| {d['name']} | {_n_fr(d['objects'])} | {_n_fr(d['versions'])} | "
            f"{_n_fr(d['delete_markers'])} | {_n_fr(d['files'])} | "
            f"{_n_fr(d['bucket_bytes'] + d['share_bytes'])} | {_n_fr(d['contacts_kept'])} | "
            f"{_n_fr(d['suppression_entries_added'])} |"
        )
    lines += [
        f"| **Total** | {_n_fr(t['objects'])} | {_n_fr(t['versions'])} | "
        f"{_n_fr(t['delete_markers'])} | {_n_fr(t['files'])} | {_n_fr(t['bytes'])} | "
        f"{_n_fr(t['contacts_kept'])} | {_n_fr(t['suppression_entries_added'])} |",
        "",
        "Toutes les versions des objets et tous les marqueurs de suppression du compartiment "
        "ont été supprimés, ainsi que les fichiers du partage, pour chaque jeu de données "
        "propre à la campagne.",
        "",
        "## Données conservées",
        "",
    ]
    kept = c["kept"]
    lines.append(
        f"- Contacts ayant consenti explicitement à être recontactés : "
        f"{_n_fr(t['contacts_kept'])}, copiés dans le répertoire permanent des contacts "
        f"`{kept.get('contacts_store', '—')}`, limités aux colonnes "
        f"{', '.join(kept.get('contacts_columns', [])) or '—'}."
    )
    lines.append(
        f"- Désinscriptions : {_n_fr(t['suppression_entries_added'])} empreintes HMAC-SHA256 "
        "(adresse électronique ou numéro de téléphone normalisés) ajoutées à la liste "
        "d'opposition, qui survit à chaque élection ; aucune donnée en clair n'y figure."
    )
    permanent = kept.get("permanent_datasets") or []
    if permanent:
        lines.append(f"- Jeux de données permanents, non détruits : {', '.join(permanent)}.")
    for d, loss in accepted_losses(c):
        lines.append(
            f"- Perte acceptée par un administrateur ({d}) : `{loss.get('source')}` détruit "
            f"sans extraction ({loss.get('reason')})."
        )
    key = c["key"]
    lines += ["", "## Clé de chiffrement (destruction cryptographique)", ""]
    if key.get("deletion_date"):
        lines.append(
            f"La clé KMS de l'élection `{key.get('key_id', '—')}` est programmée pour "
            f"suppression le {_date_fr(key['deletion_date'])} (délai de "
            f"{key.get('window_days', '—')} jours) : passé cette date, toute copie résiduelle "
            "chiffrée avec elle est illisible."
        )
    else:
        lines.append(f"Suppression de la clé reportée : {key.get('deferred_reason', '—')}.")
    j = c["journal"]
    lines += [
        "",
        "## Intégrité",
        "",
        f"Journal de l'opération : {j.get('steps')} étapes, empreinte SHA-256 `{j.get('sha256')}`.",
        f"Signature Ed25519, clé publique d'empreinte `{c['signer']['public_key_sha256']}`.",
    ]
    if verified is not None:
        lines.append(
            "Signature et contenu **vérifiés**." if verified else "**Vérification ÉCHOUÉE.**"
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


def _render_en(c: Mapping[str, Any], verified: bool | None) -> str:
    e, t, key = c["election"], c["totals"], c["key"]
    shred = key.get("deletion_date") or f"deferred: {key.get('deferred_reason')}"
    lines = [
        f"Deletion certificate: {e['id']} (due {e.get('retention_due')})",
        f"run {c['run_id']} on {c['host']}, {c['started_at']} -> {c['finished_at']}",
        f"objects {t['objects']}, versions {t['versions']}, delete markers "
        f"{t['delete_markers']}, files {t['files']}, bytes {t['bytes']}",
        f"contacts kept {t['contacts_kept']}, suppression entries added "
        f"{t['suppression_entries_added']}",
        f"key deletion: {shred}",
        f"journal sha256 {c['journal'].get('sha256')} ({c['journal'].get('steps')} steps)",
    ]
    losses = accepted_losses(c)
    if losses:
        lines.append(f"accepted losses (deleted without extraction): {len(losses)}")
        lines += [f"  {d}: {loss.get('source')} ({loss.get('reason')})" for d, loss in losses]
    if verified is not None:
        lines.append("verified" if verified else "VERIFICATION FAILED")
    return "\n".join(lines) + "\n"
