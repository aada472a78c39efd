"""`isoloir certificate verify|show`: a pinned key, clear errors, no hang (issue 13 item 6).

In-process (`isoloir.cli.main`); the certificates are fiction signed with
throw-away keys.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from isoloir.cli import main
from isoloir.retention import certificate, keys


def _body(signer: str) -> dict[str, object]:
    ds = {name: 0 for name in certificate.DATASET_COUNTS}
    ds.update({"name": "prospects", "objects": 2, "versions": 3, "files": 4})
    return {
        "format": certificate.FORMAT,
        "run_id": "ville-2026@20260601T040000.000000Z",
        "election": {
            "id": "ville-2026",
            "label": "Élection fictive",
            "retention_due": "2026-05-22",
        },
        "organisation": {"controller": "Mouvement Exemple", "dpo_contact": "dpo@exemple.example"},
        "datasets": [ds],
        "totals": certificate.totals([ds]),
        "kept": {"contacts_store": "/srv/contacts", "contacts_columns": ["email"]},
        "key": {"key_id": "k", "deletion_date": "2026-07-01T04:00:00+00:00", "window_days": 30},
        "started_at": "2026-06-01T04:00:00+00:00",
        "finished_at": "2026-06-01T04:01:00+00:00",
        "host": "h",
        "agent_version": "0.1.0",
        "journal": {"sha256": "0" * 64, "steps": 3},
        "signer": {"algorithm": "Ed25519", "public_key_sha256": signer},
    }


class Certs:
    def __init__(self, root: Path) -> None:
        self.secrets = root / "secrets"
        keys.init(self.secrets)
        self.key = keys.signing_key(self.secrets)
        self.dir = root / "certificates"
        self.path = self.dir / "ville-2026--20260601T040000000000Z.json"
        body = _body(keys.public_key_id(self.key.public_key()))
        certificate.write(self.path, certificate.sign(body, self.key), self.key.public_key())
        self.fingerprint = certificate.fingerprint(self.key.public_key())
        self.pinned = root / "ma-copie.pub.pem"  # the DPO's own copy of the public key
        self.pinned.write_bytes(keys.public_pem(self.key.public_key()))


@pytest.fixture()
def certs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Certs:
    c = Certs(tmp_path)
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(c.secrets))
    return c


@pytest.fixture()
def alarm() -> Iterator[None]:
    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("blocked for more than 20 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------ pinned keys
def test_the_key_beside_the_certificate_alone_is_unverified(
    certs: Certs, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = _run(capsys, "certificate", "verify", str(certs.path))
    assert rc == 1
    assert certs.fingerprint in out and "next to the certificate" in out
    assert "UNVERIFIED" in err

    for pin in (
        ["--public-key", str(certs.pinned)],
        ["--fingerprint", certs.fingerprint],
        ["--fingerprint", certs.fingerprint.removeprefix("sha256:").upper()],
        ["--host-key"],
    ):
        rc, out, err = _run(capsys, "certificate", "verify", str(certs.path), *pin)
        assert rc == 0, (pin, err)
        assert certs.fingerprint in out and "verified against a pinned key" in out


def test_a_forged_certificate_with_its_own_key_beside_it_is_refused(
    certs: Certs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forger = Ed25519PrivateKey.generate()
    body = _body(keys.public_key_id(forger.public_key()))
    body["datasets"][0]["versions"] = 400  # type: ignore[index]
    body["totals"] = certificate.totals(body["datasets"])  # type: ignore[arg-type]
    forged = tmp_path / "forged" / "ville-2026.json"
    certificate.write(forged, certificate.sign(body, forger), forger.public_key())

    rc, _out, err = _run(capsys, "certificate", "verify", str(forged))
    assert rc == 1 and "UNVERIFIED" in err  # before: "valid signature and content", rc 0
    rc, out, err = _run(
        capsys, "certificate", "verify", str(forged), "--fingerprint", certs.fingerprint
    )
    assert rc == 1 and f"not the pinned {certs.fingerprint}" in err
    rc, _out, err = _run(
        capsys, "certificate", "verify", str(forged), "--public-key", str(certs.pinned)
    )
    assert rc == 1 and "signature does not match the content" in err
    rc, out, err = _run(capsys, "certificate", "show", "--lang", "fr", str(forged))
    assert rc == 1 and out.startswith("> **⚠ CE CERTIFICAT N'EST PAS VALIDE**")
    assert "UNVERIFIED" in err


def test_show_of_a_tampered_certificate_says_why_on_stderr_and_on_top(
    certs: Certs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(certs.path.read_text())
    document["certificate"]["datasets"][0]["files"] = 1
    tampered = certs.dir / "tampered.json"
    tampered.write_bytes(certificate.render_file(document))

    rc, out, err = _run(capsys, "certificate", "show", "--lang", "fr", str(tampered), "--host-key")
    assert rc == 1
    assert "signature does not match the content" in err
    assert "totals do not add up to the datasets" in err
    first = out.splitlines()[0]
    assert first.startswith("> **⚠ CE CERTIFICAT N'EST PAS VALIDE**")
    assert "la signature ne correspond pas au contenu" in first  # French (CLI N8)
    assert "signature does not match" not in out and "host's signing key" not in out
    assert "clé de signature de cet hôte" in out
    rc, out, err = _run(capsys, "certificate", "show", "--lang", "en", str(tampered), "--host-key")
    assert rc == 1 and out.startswith("> **⚠ THIS CERTIFICATE IS NOT VALID**")

    rc, out, err = _run(
        capsys, "certificate", "show", "--lang", "fr", str(certs.path), "--host-key"
    )
    assert rc == 0 and err == ""
    assert out.startswith("# Certificat de destruction") and "**vérifiés**" in out
    assert certs.fingerprint in out


def test_show_escapes_control_characters_of_a_tampered_certificate(
    certs: Certs, capsys: pytest.CaptureFixture[str]
) -> None:
    # CLI review N7: the label's ESC sequences cleared and recoloured the terminal
    document = json.loads(certs.path.read_text())
    document["certificate"]["election"]["label"] = "Évil\x1b[2J\x1b[31m RED\x07"
    document["certificate"]["datasets"][0]["name"] = "pros\u202epects\r\nFORGED"
    tampered = certs.dir / "escaped.json"
    tampered.write_bytes(certificate.render_file(document))
    for lang in ("fr", "en"):
        rc, out, _err = _run(
            capsys, "certificate", "show", "--lang", lang, str(tampered), "--host-key"
        )
        assert rc == 1
        assert not any(c in out for c in "\x1b\x07\r\u202e")
        assert "Évil\\x1b[2J\\x1b[31m RED\\x07" in out
        assert "pros\\u202epects\\x0d\\x0aFORGED" in out
        assert not any(line.startswith("FORGED") for line in out.splitlines())


# ---------------------------------------------------------- bad files (D10)
@pytest.mark.parametrize("command", ["verify", "show"])
def test_missing_directory_fifo_and_dangling_link_are_one_line_exit_2(
    certs: Certs, capsys: pytest.CaptureFixture[str], alarm: None, command: str
) -> None:
    missing = certs.dir / "nope.json"
    directory = certs.dir / "adir.json"
    directory.mkdir()
    fifo = certs.dir / "fifo.json"
    os.mkfifo(fifo)
    dangling = certs.dir / "dangling.json"
    dangling.symlink_to(certs.dir / "gone.json")
    nodir = certs.dir.parent / "nodir" / "x.json"
    cases = {
        missing: "cannot read the certificate: No such file or directory",
        directory: "a directory, not a certificate",
        fifo: "a named pipe, not a certificate",
        dangling: "cannot read the certificate: No such file or directory",
        nodir: "cannot read the certificate",  # the certificate is blamed, not the key
    }
    for path, reason in cases.items():
        rc, out, err = _run(capsys, "certificate", command, str(path))
        assert rc == 2, (path, out, err)
        assert err == f"error: {path}: {reason}" + err.split(reason, 1)[1], err
        assert err.count("\n") == 1 and "Traceback" not in err and out == ""


def test_a_bad_pinned_key_or_fingerprint_is_one_line_exit_2(
    certs: Certs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\x00\x01 not a key")
    for extra in (
        ["--public-key", str(garbage)],
        ["--public-key", str(tmp_path / "absent.pem")],
        ["--fingerprint", "abc"],
    ):
        rc, out, err = _run(capsys, "certificate", "verify", str(certs.path), *extra)
        assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, (extra, err)
