"""The retention agent on the emulator (moto over TLS) and a temp share.

All data is fake. Each test uses its own bucket names (the emulator is shared).
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import random
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from isoloir import aws
from isoloir.controller.emulator import Emulator
from isoloir.jobs import JobContext
from isoloir.policy import load_policies
from isoloir.retention import keys, tabular
from isoloir.retention.jobs import retention_job
from isoloir.retention.journal import CRASH_ENV, redact_value
from isoloir.retention.suppression import SuppressionList
from isoloir.retention.suppression import db_path as suppression_db

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-3"
NOW = "2026-06-01T04:00:00+00:00"
CONTACT_COLUMNS = ["prenom", "nom", "email", "telephone", "commune"]

# ------------------------------------------------------------------ fixtures


def baseline_text(share_root: Path, contacts: Path) -> str:
    text = (REPO / "policies" / "baseline.yml").read_text(encoding="utf-8")
    text = text.replace("path: /srv/isoloir/contacts", f"path: {contacts}")
    return text.replace("share_root: /srv/elections", f"share_root: {share_root}")


def election_yaml(
    eid: str,
    bucket: str,
    datasets: list[dict[str, Any]],
    *,
    rounds: str = "[2026-03-15, 2026-03-22]",
    due: str = "2026-05-22",
    hold: str = "",
) -> str:
    lines = [
        f"id: {eid}",
        f"label: Élection fictive {eid}",
        "kind: municipales",
        f"rounds: {rounds}",
        "retention:",
        f"  date: {due}",
        "legal_hold:",
        f"  active: {'true' if hold else 'false'}",
        f"  reason: {json.dumps(hold, ensure_ascii=False)}",
        "members: [cfictive]",
        f"bucket: {bucket}",
        "datasets:",
    ]
    for ds in datasets:
        lines += [
            f"  - name: {ds['name']}",
            f"    bucket_prefix: {ds['name']}/",
            f"    share_path: {ds['name']}",
            "    origin: opt_in_form",
            "    legal_basis: legitimate_interest",
            f"    category: {ds.get('category', 'campaign')}",
        ]
        if ds.get("tabular") == "postal":  # a door-to-door sheet: no e-mail or phone
            lines += [
                "    tabular:",
                "      opt_out: {column: desinscrit, accepted: [oui]}",
                "      name_columns: [prenom, nom]",
                "      address_columns: [adresse, commune]",
            ]
        elif ds.get("tabular"):
            lines += [
                "    tabular:",
                "      consent: {column: consentement, accepted: [oui, 'yes', '1']}",
                "      opt_out: {column: desinscrit, accepted: [oui, 'yes', '1']}",
                "      email_column: email",
                "      phone_column: telephone",
            ]
        elif ds.get("category", "campaign") == "campaign":
            lines.append("    no_opt_outs: notes de réunion, aucune liste de personnes")
    return "\n".join(lines) + "\n"


class World:
    """A policies directory, a share root, a contacts store, state and secrets dirs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.policies = root / "policies"
        self.share_root = root / "srv" / "elections"
        self.contacts = root / "srv" / "contacts"
        self.state = root / "state"
        self.secrets = root / "secrets"
        self.outside = root / "outside"
        for d in (self.policies / "elections", self.share_root, self.contacts, self.outside):
            d.mkdir(parents=True, exist_ok=True)
        (self.policies / "baseline.yml").write_text(
            baseline_text(self.share_root, self.contacts), encoding="utf-8"
        )
        keys.init(self.secrets)  # as the agents role does at deploy
        self.tag = uuid.uuid4().hex[:8]

    def bucket(self, name: str) -> str:
        # the policies require bucket names to start with the organisation's slug
        return f"mouvement-exemple-rt-{self.tag}-{name}"

    def add_election(self, eid: str, datasets: list[dict[str, Any]], **kw: Any) -> str:
        bucket = self.bucket(eid)
        (self.policies / "elections" / f"{eid}.yml").write_text(
            election_yaml(eid, bucket, datasets, **kw), encoding="utf-8"
        )
        return bucket

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ISOLOIR_NOW": NOW,
            "ISOLOIR_SECRETS_DIR": str(self.secrets),
            "ISOLOIR_STATE_DIR": str(self.state),
            "ISOLOIR_CONFIG": str(self.policies),
        }

    def cli(
        self, *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "isoloir.cli", *args],
            env={**self.env(), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )


def make_bucket(s3: Any, kms: Any, bucket: str) -> str:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key_id = kms.create_key(Description=f"isoloir test {bucket}")["KeyMetadata"]["KeyId"]
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_id,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    return str(key_id)


# The emulator reads the account and region from the credential scope; it does
# not check the signature while authentication is off.
FAKE_AUTH = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAISOLOIREMULATOR0/20260601/"
    f"{REGION}/s3/aws4_request, SignedHeaders=host, Signature={'0' * 64}",
    "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
}


def put_many(s3: Any, bucket: str, items: list[tuple[str, bytes]], workers: int = 8) -> None:
    """Seed fast: plain PUT requests over kept-alive TLS connections, several threads.

    The emulator does not check signatures, and skipping boto3's signing and
    parsing roughly doubles the seeding rate on a busy machine. The versions of
    one key are written in order by one thread.
    """
    endpoint = urllib.parse.urlsplit(os.environ["ISOLOIR_AWS_ENDPOINT"])
    ctx = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
    local = threading.local()
    by_key: dict[str, list[bytes]] = {}
    for key, body in items:
        by_key.setdefault(key, []).append(body)

    def put_all(key: str) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPSConnection(endpoint.hostname, endpoint.port, context=ctx)
        for body in by_key[key]:
            local.conn.request(
                "PUT", f"/{bucket}/{urllib.parse.quote(key)}", body=body, headers=FAKE_AUTH
            )
            response = local.conn.getresponse()
            answer = response.read()
            assert response.status == 200, (response.status, answer[:300])

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put_all, list(by_key)))


def bucket_state(s3: Any, bucket: str, prefix: str = "") -> list[tuple[Any, ...]]:
    """Every version and delete marker, with the content of each version."""
    out: list[tuple[Any, ...]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"]
            out.append(("v", v["Key"], v["VersionId"], body.read()))
        for m in page.get("DeleteMarkers", []):
            out.append(("m", m["Key"], m["VersionId"]))
    return sorted(out, key=lambda t: (t[1], t[2], t[0]))


def count_versions(s3: Any, bucket: str, prefix: str = "") -> tuple[int, int]:
    versions = markers = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions += len(page.get("Versions", []))
        markers += len(page.get("DeleteMarkers", []))
    return versions, markers


def only(directory: Path, pattern: str) -> Path:
    """The one file matching `pattern` (certificates and kept contacts are run-scoped)."""
    (path,) = sorted(directory.glob(pattern))
    return path


def tree_state(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", p.read_bytes())
    return out


def fake_people(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    first = ["Alix", "Basile", "Cyrielle", "Dorian", "Elsa", "Fabien", "Gaëlle", "Hugo"]
    last = ["Fictif", "Exemple", "Modèle", "Test", "Démo", "Factice"]
    people = []
    for i in range(n):
        people.append(
            {
                "prenom": rng.choice(first),
                "nom": rng.choice(last),
                "email": f"personne{seed}-{i}@exemple.invalid",
                "telephone": f"06 {seed % 90 + 10:02d} {i // 100 % 100:02d} {i % 100:02d} 00",
                "commune": "Exempleville",
                "bureau": str(i % 7),
            }
        )
    return people


def prospect_csv(rows: list[dict[str, str]], delimiter: str = ",") -> bytes:
    out = io.StringIO(newline="")
    cols = [
        "prenom",
        "nom",
        "email",
        "telephone",
        "commune",
        "bureau",
        "consentement",
        "desinscrit",
    ]
    w = csv.DictWriter(out, fieldnames=cols, delimiter=delimiter, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


@pytest.fixture()
def world(tmp_path: Path, emulator: Emulator) -> World:
    return World(tmp_path)


@pytest.fixture()
def clients(emulator: Emulator) -> tuple[Any, Any]:
    return aws.client("s3", REGION), aws.client("kms", REGION)


# ---------------------------------------------------------------- the purge


def test_purge_of_a_due_election(world: World, clients: tuple[Any, Any]) -> None:
    s3, kms = clients
    due_bucket = world.add_election(
        "ville-2026",
        [{"name": "prospects", "tabular": True}, {"name": "porte-a-porte"}, {"name": "reunions"}],
    )
    other_bucket = world.add_election(
        "ville-2027",
        [{"name": "prospects", "tabular": True}, {"name": "benevoles", "category": "permanent"}],
        rounds="[2027-03-14, 2027-03-21]",
        due="2027-05-21",
    )
    due_key = make_bucket(s3, kms, due_bucket)
    other_key = make_bucket(s3, kms, other_bucket)

    # Prospects: consent, opt-out, both (opt-out wins), neither.
    people = fake_people(40, seed=1)
    for i, p in enumerate(people):
        p["consentement"] = "oui" if i % 4 == 0 else ("Yes " if i % 4 == 1 else "non")
        p["desinscrit"] = "oui" if i % 5 == 0 else ""
    in_bucket, in_share = people[:25], people[25:]
    # older version of the same file first, then the current one, then another table
    put_many(s3, due_bucket, [("prospects/liste.csv", prospect_csv(in_bucket[:5]))])
    put_many(s3, due_bucket, [("prospects/liste.csv", prospect_csv(in_bucket))])
    put_many(
        s3,
        due_bucket,
        [
            (f"porte-a-porte/secteur-{i}.txt", f"visite {i} v{v}".encode())
            for i in range(30)
            for v in range(3)
        ]
        + [(f"reunions/cr-{i}.md", b"compte rendu") for i in range(5)],
    )
    for i in range(0, 30, 3):
        s3.delete_object(Bucket=due_bucket, Key=f"porte-a-porte/secteur-{i}.txt")  # delete markers
    put_many(
        s3, other_bucket, [(f"prospects/p{i}.csv", prospect_csv(people[:3])) for i in range(4)]
    )
    put_many(s3, other_bucket, [(f"benevoles/b{i}.txt", b"benevole") for i in range(3)])
    s3.delete_object(Bucket=other_bucket, Key="prospects/p0.csv")

    due_share = world.share_root / "ville-2026"
    (due_share / "prospects").mkdir(parents=True)
    (due_share / "prospects" / "terrain.csv").write_bytes(prospect_csv(in_share, ";"))
    (due_share / "porte-a-porte" / "sous" / "dossier").mkdir(parents=True)
    for i in range(12):
        (due_share / "porte-a-porte" / "sous" / "dossier" / f"f{i}.txt").write_bytes(b"x" * i)
    (due_share / "reunions").mkdir()
    (due_share / "reunions" / "notes.txt").write_bytes(b"notes")
    # a symlink to a file outside the share: the link goes, its target stays
    target = world.outside / "ne-pas-toucher.txt"
    target.write_bytes(b"hors du partage")
    (due_share / "reunions" / "lien").symlink_to(target)
    other_share = world.share_root / "ville-2027"
    for ds in ("prospects", "benevoles"):
        (other_share / ds).mkdir(parents=True)
        (other_share / ds / "a.csv").write_bytes(prospect_csv(people[:2]))
    (world.contacts / "adherents.csv").write_bytes(b"prenom,nom\r\nAlix,Fictif\r\n")

    before_other = bucket_state(s3, other_bucket)
    before_other_share = tree_state(other_share)
    before_contacts = (world.contacts / "adherents.csv").read_bytes()
    v_due, m_due = count_versions(s3, due_bucket)

    result = world.cli("retention", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    for p in people:  # no personal data in the output
        assert p["email"] not in result.stdout + result.stderr

    # the due election: every version and delete marker, every file, gone
    assert count_versions(s3, due_bucket) == (0, 0)
    for ds in ("prospects", "porte-a-porte", "reunions"):
        assert list((due_share / ds).iterdir()) == []
    assert target.read_bytes() == b"hors du partage"
    # the other election, byte-identical
    assert bucket_state(s3, other_bucket) == before_other
    assert tree_state(other_share) == before_other_share
    assert (world.contacts / "adherents.csv").read_bytes() == before_contacts

    # kept contacts: exactly the consenting rows without an opt-out, minimised
    current = in_bucket + in_share
    consenting = [
        p
        for p in current
        if p["consentement"].strip().lower() in ("oui", "yes") and not p["desinscrit"]
    ]
    opted = [p for p in current if p["desinscrit"] == "oui"]
    header, kept = tabular.read_table(
        only(world.contacts, "ville-2026--prospects--*.csv").read_bytes()
    )
    assert header == CONTACT_COLUMNS
    assert sorted(tuple(r[c] for c in CONTACT_COLUMNS) for r in kept) == sorted(
        tuple(p[c] for c in CONTACT_COLUMNS) for p in consenting
    )
    # the suppression list: exactly the opt-outs (email and phone of each)
    secret = world.secrets / "retention-hmac.key"
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    with SuppressionList(
        suppression_db(world.state), bytes.fromhex(secret.read_text().strip())
    ) as store:
        assert store.count() == 2 * len(opted)
        for p in opted:
            assert store.contains(p["email"].upper(), None)
            assert store.contains(None, tabular.normalise_phone(p["telephone"]))
        for p in consenting:
            assert not store.contains(
                tabular.normalise_email(p["email"]), tabular.normalise_phone(p["telephone"])
            )
    raw = (
        sqlite3.connect(suppression_db(world.state))
        .execute("SELECT digest FROM suppressed")
        .fetchall()
    )
    assert all(len(d) == 64 and "@" not in d for (d,) in raw)

    # suppression filter on a new prospect file: opt-outs (written differently) removed
    newcomers = fake_people(6, seed=2)
    returning = [
        dict(p, email=p["email"].upper(), telephone="+33 " + p["telephone"][1:]) for p in opted[:3]
    ]
    phone_only = [dict(opted[3], email="")]
    new_file = world.root / "nouveaux.csv"
    new_file.write_bytes(prospect_csv(newcomers + returning + phone_only, ";"))
    out_file = world.root / "nouveaux-filtre.csv"
    filt = world.cli("suppression", "filter", str(new_file), "-o", str(out_file))
    assert filt.returncode == 0, filt.stderr
    assert "10 rows read, 4 removed" in filt.stdout
    assert "@" not in filt.stdout
    _h, rows = tabular.read_table(out_file.read_bytes())
    assert [r["email"] for r in rows] == [p["email"] for p in newcomers]

    # crypto-shredding
    meta = kms.describe_key(KeyId=due_key)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert kms.describe_key(KeyId=other_key)["KeyMetadata"]["KeyState"] == "Enabled"

    # the certificate
    cert = only(world.state / "retention" / "certificates", "ville-2026--*.json")
    assert str(cert) in result.stdout
    verify = world.cli("certificate", "verify", str(cert), "--host-key")
    assert verify.returncode == 0, verify.stderr
    unpinned = world.cli("certificate", "verify", str(cert))
    assert unpinned.returncode == 1 and "UNVERIFIED" in unpinned.stderr
    body = json.loads(cert.read_text())["certificate"]
    assert body["key"]["deletion_date"] == meta["DeletionDate"].isoformat()
    assert body["key"]["window_days"] == 30
    assert body["totals"]["versions"] + body["totals"]["delete_markers"] == v_due + m_due
    assert body["totals"]["delete_markers"] == m_due == 10
    assert body["totals"]["objects"] == 1 + 30 + 5
    assert body["totals"]["files"] == 1 + 12 + 2
    assert body["totals"]["contacts_kept"] == len(consenting)
    assert body["totals"]["suppression_entries_added"] == 2 * len(opted)
    assert body["election"]["id"] == "ville-2026"
    data = cert.read_bytes()
    for pos in random.Random(7).sample(range(len(data)), 25):
        tampered = world.root / "tampered.json"
        tampered.write_bytes(data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :])
        bad = world.cli(
            "certificate",
            "verify",
            str(tampered),
            "--public-key",
            str(cert.parent / "retention-signing.pub.pem"),
        )
        assert bad.returncode != 0, pos
    show = world.cli("certificate", "show", "--lang", "fr", str(cert), "--host-key")
    assert show.returncode == 0, show.stderr
    assert "Certificat de destruction" in show.stdout and "vérifiés" in show.stdout

    # a second run changes nothing and reports the completed purge
    again = world.cli("retention", "run")
    assert again.returncode == 0
    assert "RET-PURGED" in again.stdout and str(cert) in again.stdout
    assert bucket_state(s3, other_bucket) == before_other

    # the daemon's job: the purge finding, with the certificate path
    policies = load_policies(world.policies)
    os.environ["ISOLOIR_SECRETS_DIR"] = str(world.secrets)
    try:
        findings = retention_job(
            JobContext(policies=policies, state_dir=world.state, now=datetime.fromisoformat(NOW))
        )
    finally:
        os.environ.pop("ISOLOIR_SECRETS_DIR")
    purged = [f for f in findings if f.rule_id == "RET-PURGED"]
    assert len(purged) == 1 and purged[0].evidence["certificate"] == str(cert)


def test_door_to_door_opt_out_without_email_or_phone_survives_the_purge(
    world: World, clients: tuple[Any, Any]
) -> None:
    """Issue 23, item 2: "ne plus me solliciter" said at the door, with no e-mail or phone,
    is kept (name and address, hashed) when the sheet is destroyed, and takes the person
    out of next year's electoral list however it writes them."""
    s3, kms = clients
    bucket = world.add_election(
        "ville-2026", [{"name": "porte-a-porte", "tabular": "postal"}, {"name": "reunions"}]
    )
    make_bucket(s3, kms, bucket)
    sheet = (
        "prenom;nom;adresse;commune;sympathie;desinscrit\r\n"
        "Alix;Fictif;3 rue des Essais;Exempleville;indécis;\r\n"
        "Basile;Modèle;12 avenue de l'Exemple;Exempleville;;oui\r\n"
        "Capucine;Test;7 place du Marché;Exempleville;favorable;\r\n"
    ).encode()
    put_many(s3, bucket, [("porte-a-porte/tournee-1.csv", sheet)])
    share = world.share_root / "ville-2026" / "porte-a-porte"
    share.mkdir(parents=True)
    (world.share_root / "ville-2026" / "reunions").mkdir()
    (share / "tournee-2.csv").write_bytes(
        b"prenom;nom;adresse;commune;desinscrit\r\nDorian;Essai;1 bd du Test;Exempleville;oui\r\n"
    )

    result = world.cli("retention", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Modèle" not in result.stdout + result.stderr
    assert count_versions(s3, bucket) == (0, 0)
    assert list(share.iterdir()) == []
    cert = only(world.state / "retention" / "certificates", "ville-2026--*.json")
    (ds,) = [
        d
        for d in json.loads(cert.read_text())["certificate"]["datasets"]
        if d["name"] == "porte-a-porte"
    ]
    assert ds["opt_outs"] == 2 and ds["opt_outs_without_identifier"] == 0, ds
    assert ds["suppression_entries_added"] == 2
    with SuppressionList.for_filtering(
        suppression_db(world.state), keys.hmac_key(world.secrets)
    ) as store:
        assert store.count_kind("postal") == 2 and store.count() == 2
        raw = [
            d
            for (d,) in sqlite3.connect(suppression_db(world.state)).execute(
                "SELECT digest FROM suppressed"
            )
        ]
        assert all(len(d) == 64 and "Modèle" not in d for d in raw)

    # next year's extract of the electoral list: other columns, other spellings
    roll = world.root / "liste-electorale-2027.csv"
    roll.write_text(
        "Nom;Prénoms;Adresse;Code postal;Commune\r\n"
        "MODELE;Basile;12, av. de l’Exemple;99000;EXEMPLEVILLE\r\n"
        "FICTIF;Alix;3 rue des Essais;99000;Exempleville\r\n"
        "ESSAI;Dorian;1 boulevard du Test;99000;Exempleville\r\n"
        "MODELE;Basile;14 avenue de l'Exemple;99000;Exempleville\r\n",
        encoding="utf-8",
    )
    out = world.root / "liste-filtree.csv"
    filt = world.cli("suppression", "filter", str(roll), "-o", str(out))
    assert filt.returncode == 0, filt.stderr
    assert "4 rows read, 2 removed" in filt.stdout, filt.stdout
    _h, rows = tabular.read_table(out.read_bytes())
    # the namesake at another address is still written to
    assert [(r["Nom"], r["Adresse"]) for r in rows] == [
        ("FICTIF", "3 rue des Essais"),
        ("MODELE", "14 avenue de l'Exemple"),
    ]


def test_legal_hold_stops_everything(world: World, clients: tuple[Any, Any]) -> None:
    s3, kms = clients
    reason = "Recours devant le tribunal administratif, dossier fictif n° 2026-0042"
    bucket = world.add_election("bourg-2026", [{"name": "prospects", "tabular": True}], hold=reason)
    key = make_bucket(s3, kms, bucket)
    put_many(s3, bucket, [("prospects/a.csv", prospect_csv(fake_people(5, 3)))] * 2)
    share = world.share_root / "bourg-2026" / "prospects"
    share.mkdir(parents=True)
    (share / "b.csv").write_bytes(prospect_csv(fake_people(5, 4)))
    before, before_share = bucket_state(s3, bucket), tree_state(world.share_root)

    result = world.cli("retention", "run")
    assert result.returncode == 1
    assert "RET-HOLD" in result.stdout and reason in result.stdout
    assert "Nothing was deleted" in result.stdout
    plan = world.cli("retention", "plan")
    assert reason in plan.stdout
    assert bucket_state(s3, bucket) == before
    assert tree_state(world.share_root) == before_share
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    assert list(world.contacts.iterdir()) == []
    assert not (world.state / "retention" / "certificates").exists()

    findings = retention_job(
        JobContext(
            policies=load_policies(world.policies),
            state_dir=world.state,
            now=datetime.fromisoformat(NOW),
        )
    )
    (hold,) = findings
    assert hold.rule_id == "RET-HOLD" and hold.evidence["reason"] == reason
    assert hold.evidence["deleted"] == 0 and reason in hold.message


def test_plan_lists_without_deleting(world: World, clients: tuple[Any, Any]) -> None:
    s3, kms = clients
    bucket = world.add_election("hameau-2026", [{"name": "prospects", "tabular": True}])
    make_bucket(s3, kms, bucket)
    (world.share_root / "hameau-2026" / "prospects").mkdir(parents=True)  # as Ansible does
    people = fake_people(8, 5)
    for i, p in enumerate(people):
        p["consentement"], p["desinscrit"] = ("oui" if i < 3 else ""), ("oui" if i == 7 else "")
    put_many(s3, bucket, [("prospects/l.csv", prospect_csv(people))] * 3)
    before = bucket_state(s3, bucket)
    plan = world.cli("retention", "plan", "--list")
    assert plan.returncode == 0, plan.stderr
    assert "would delete 1 objects (3 versions, 0 delete markers" in plan.stdout
    assert "would keep 3 consenting contacts, find 1 opt-out row(s) and record 1" in plan.stdout
    assert plan.stdout.count(f"s3://{bucket}/prospects/l.csv version ") == 3
    dry = world.cli("retention", "run", "--dry-run")
    assert dry.returncode == 1 and "RET-DUE" in dry.stdout
    assert bucket_state(s3, bucket) == before


# ------------------------------------------------------- kill -9 and resume
#
# 5,000 objects x 3 versions and 1,500 share files, killed KILLS times: half at
# a random journal checkpoint (the test-only hook), half after a random delay
# (cut short once the journal moved one or two writes on, so the purge cannot
# finish before the last kill). Then one run to the end, compared with the
# state an uninterrupted run leaves (computed from the seeded data;
# test_purge_of_a_due_election checks that state on a real uninterrupted run).
# The emulator copies every version of the bucket on each ListObjectVersions
# call and serves ~100 requests/s on a busy 2-core machine, so seeding and
# listing dominate the runtime, not the number of kills.

OBJECTS = int(os.environ.get("ISOLOIR_TEST_RETENTION_OBJECTS", "5000"))
VERSIONS = 3
SHARE_FILES = 1500
KILLS = int(os.environ.get("ISOLOIR_TEST_RETENTION_KILLS", "20"))


def journal_writes(state: Path) -> int:
    """Step rows written so far (planned + done): how far a purge has gone."""
    path = state / "retention" / "journal.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT COUNT(*) + SUM(status = 'done') FROM steps").fetchone()
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()
    return int(row[0] or 0)


def test_kill_9_at_random_points_then_resume(world: World, clients: tuple[Any, Any]) -> None:
    s3, kms = clients
    eid = "kill-2026"
    people = fake_people(30, seed=9)
    for i, p in enumerate(people):
        p["consentement"], p["desinscrit"] = (
            ("oui" if i % 3 == 0 else ""),
            ("1" if i % 4 == 0 else ""),
        )
    bucket = world.add_election(
        eid,
        [{"name": "prospects", "tabular": True}, {"name": "benevoles", "category": "permanent"}],
    )
    key_id = make_bucket(s3, kms, bucket)
    items = [("prospects/liste.csv", prospect_csv(people))] * VERSIONS
    items += [
        (f"prospects/fiches/{i:05d}.txt", f"{v}".encode())
        for i in range(OBJECTS - 1)
        for v in range(VERSIONS)
    ]
    items += [(f"benevoles/{i}.txt", f"benevole {i}".encode()) for i in range(5)]
    items += [(f"prospects-archive/{i}.txt", b"hors perimetre") for i in range(5)]
    put_many(s3, bucket, items)
    share_dir = world.share_root / eid
    (share_dir / "prospects" / "lots").mkdir(parents=True)
    for i in range(SHARE_FILES):
        (share_dir / "prospects" / "lots" / f"{i:04d}.txt").write_bytes(b"f" * (i % 50))
    (share_dir / "benevoles").mkdir()
    (share_dir / "benevoles" / "liste.txt").write_bytes(b"garder")
    other = world.outside / "autre-election"
    other.mkdir()
    (other / "x.txt").write_bytes(b"autre")
    (share_dir / "prospects" / "lien").symlink_to(other, target_is_directory=True)

    out_of_scope = bucket_state(s3, bucket, "benevoles/") + bucket_state(
        s3, bucket, "prospects-archive/"
    )
    # one call: the emulator copies the whole bucket on every ListObjectVersions
    slow = aws.client_kwargs("s3")  # one listing of the whole bucket: longer than READ_TIMEOUT
    slow["config"] = slow["config"].merge(Config(read_timeout=600))
    listing = (
        aws.session(REGION)
        .client("s3", **slow)
        .list_object_versions(Bucket=bucket, Prefix="prospects/", MaxKeys=10 * OBJECTS * VERSIONS)
    )
    assert not listing["IsTruncated"]
    seeded = {(v["Key"], v["VersionId"]) for v in listing["Versions"]}
    assert len(seeded) == OBJECTS * VERSIONS
    tree_before = tree_state(world.root / "outside") | {
        "benevoles": tree_state(share_dir / "benevoles")
    }

    rng = random.Random(int(os.environ.get("ISOLOIR_TEST_SEED", "20261123")))
    args = [sys.executable, "-m", "isoloir.cli", "retention", "run", "--election", eid]
    kills, points = 0, []
    while kills < KILLS:
        if kills % 2 == 0:  # at a random journal checkpoint (test-only hook)
            at = rng.randint(1, 4)
            proc = subprocess.run(
                args,
                env={**world.env(), CRASH_ENV: str(at)},
                capture_output=True,
                text=True,
                timeout=600,
            )
            rc = proc.returncode
            points.append(f"checkpoint {at}")
        else:  # after a random delay, at the latest once the journal moved 1 or 2 writes on
            delay, moves = rng.uniform(0.5, 8.0), rng.randint(1, 2)
            start = journal_writes(world.state)
            popen = subprocess.Popen(
                args, env=world.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + delay
            while popen.poll() is None and time.monotonic() < deadline:
                if journal_writes(world.state) - start >= moves:
                    break
                time.sleep(0.02)
            if popen.poll() is None:
                os.kill(popen.pid, signal.SIGKILL)
            rc = popen.wait(timeout=600)
            points.append(f"{delay:.1f}s/{moves}")
        assert rc in (-signal.SIGKILL, 0), (rc, points)
        if rc == 0:
            break
        kills += 1
    assert kills == KILLS, f"the purge finished after {kills} kills ({points})"
    final = world.cli("retention", "run", "--election", eid)
    assert final.returncode == 0, final.stdout + final.stderr
    assert "resumed an interrupted run" in final.stdout

    # the state an uninterrupted run leaves: the scope emptied, nothing else touched
    assert count_versions(s3, bucket, "prospects/") == (0, 0)
    assert (
        bucket_state(s3, bucket, "benevoles/") + bucket_state(s3, bucket, "prospects-archive/")
        == out_of_scope
    )
    assert list((share_dir / "prospects").iterdir()) == []
    assert (
        tree_state(world.root / "outside") | {"benevoles": tree_state(share_dir / "benevoles")}
        == tree_before
    )
    consenting = [p for p in people if p["consentement"] == "oui" and not p["desinscrit"]]
    _h, kept = tabular.read_table(only(world.contacts, f"{eid}--prospects--*.csv").read_bytes())
    assert [tuple(r.values()) for r in kept] == [
        tuple(p[c] for c in CONTACT_COLUMNS) for p in consenting
    ]
    opted = [p for p in people if p["desinscrit"]]
    secret = bytes.fromhex((world.secrets / "retention-hmac.key").read_text().strip())
    with SuppressionList(suppression_db(world.state), secret) as store:
        assert store.count() == 2 * len(opted)
        assert all(store.contains(p["email"], p["telephone"]) for p in opted)
    # the bucket keeps permanent data, so the key is not shredded, and the certificate says why
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    cert_path = only(world.state / "retention" / "certificates", f"{eid}--*.json")
    cert = json.loads(cert_path.read_text())["certificate"]
    assert "10 object versions outside the campaign datasets" in cert["key"]["deferred_reason"]
    ds, outside = cert["datasets"]
    # the rest of the election's folder (only the datasets' folders there): nothing to delete
    assert outside["name"] == "_undeclared" and (outside["files"], outside["directories"]) == (0, 0)
    assert (ds["objects"], ds["versions"], ds["delete_markers"]) == (OBJECTS, OBJECTS * VERSIONS, 0)
    assert (ds["files"], ds["directories"]) == (SHARE_FILES + 1, 1)
    assert ds["share_bytes"] == sum(i % 50 for i in range(SHARE_FILES)) + len(str(other))
    assert (ds["contacts_kept"], ds["suppression_entries_added"]) == (
        len(consenting),
        2 * len(opted),
    )
    assert world.cli("certificate", "verify", str(cert_path), "--host-key").returncode == 0

    # nothing missed, nothing done twice: each seeded version is in exactly one journaled batch
    db = sqlite3.connect(world.state / "retention" / "journal.sqlite")
    batches = [
        json.loads(p) for (p,) in db.execute("SELECT payload FROM steps WHERE kind = 's3-batch'")
    ]
    entries = [(k, v) for b in batches for k, v, _m, _s in b["entries"]]
    # certified: the journal keeps the names as HMACs only (docs/retention.md)
    key = keys.hmac_key(world.secrets)
    hidden = {(redact_value(k, key), redact_value(v, key)) for k, v in seeded}
    assert len(entries) == len(set(entries)) and set(entries) == hidden
    assert all(len(b["entries"]) <= 1000 for b in batches) and len(batches) == -(
        -len(seeded) // 1000
    )
    files = [
        f
        for (p,) in db.execute("SELECT payload FROM steps WHERE kind = 'share-batch'")
        for f, _s, _l in json.loads(p)["files"]
    ]
    assert len(files) == len(set(files)) == SHARE_FILES + 1
    assert db.execute("SELECT COUNT(*) FROM steps WHERE status != 'done'").fetchone() == (0,)
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
