"""Rights requests on the demo's data: the moto emulator (S3 versions) and a temp share.

The example policies (policies/), the demo's fake contacts (controller/fakedata:
60 contacts, two versions of the prospects file, a door-to-door sheet, the same
files in the share), a kept-contacts file and the suppression list. The
`isoloir person` commands run as the DPO would run them, in a subprocess.
Assertions never print a name, address or number (counts and paths only).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from isoloir import aws
from isoloir.controller import fakedata
from isoloir.dpo import requests
from isoloir.retention import keys
from isoloir.retention.suppression import SuppressionList
from isoloir.retention.suppression import db_path as suppression_db

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-3"
ELECTION = "exempleville-2027"
NOW = "2027-04-02T10:00:00+00:00"


class DemoWorld:
    """The example policies with a unique bucket, a temp share and contacts store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.policies = root / "policies"
        self.share_root = root / "srv" / "elections"
        self.contacts = root / "srv" / "contacts"
        self.state = root / "state"
        self.secrets = root / "secrets"
        (self.policies / "elections").mkdir(parents=True)
        self.contacts.mkdir(parents=True)
        baseline = (REPO / "policies" / "baseline.yml").read_text(encoding="utf-8")
        baseline = baseline.replace("path: /srv/isoloir/contacts", f"path: {self.contacts}")
        baseline = baseline.replace("share_root: /srv/elections", f"share_root: {self.share_root}")
        (self.policies / "baseline.yml").write_text(baseline, encoding="utf-8")
        self.bucket = f"mouvement-exemple-dpo-{uuid.uuid4().hex[:8]}"
        election = (REPO / "policies" / "elections" / f"{ELECTION}.yml").read_text("utf-8")
        (self.policies / "elections" / f"{ELECTION}.yml").write_text(
            election + f"bucket: {self.bucket}\n", encoding="utf-8"
        )
        keys.init(self.secrets)
        self.share = self.share_root / ELECTION

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "ISOLOIR_NOW": NOW,
            "ISOLOIR_SECRETS_DIR": str(self.secrets),
            "ISOLOIR_STATE_DIR": str(self.state),
            "ISOLOIR_CONFIG": str(self.policies),
        }
        return subprocess.run(
            [sys.executable, "-m", "isoloir.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def seed(world: DemoWorld) -> list[fakedata.Contact]:
    """What demo.seed() stores, plus a kept-contacts file and an earlier opt-out."""
    people = fakedata.contacts(60)
    text = fakedata.csv_text(people)
    s3 = aws.client("s3", REGION)
    kms = aws.client("kms", REGION)
    s3.create_bucket(Bucket=world.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=world.bucket, VersioningConfiguration={"Status": "Enabled"})
    key_id = kms.create_key(Description="dpo test")["KeyMetadata"]["KeyId"]
    s3.put_bucket_encryption(
        Bucket=world.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_id,
                    }
                }
            ]
        },
    )
    key = "prospects/contacts-2027.csv"
    s3.put_object(Bucket=world.bucket, Key=key, Body=text[: len(text) // 2].encode())
    s3.put_object(Bucket=world.bucket, Key=key, Body=text.encode())
    sheet = fakedata.csv_text(people[:10]).encode()
    s3.put_object(Bucket=world.bucket, Key="porte-a-porte/tournee-1.csv", Body=sheet)
    for rel, body in (
        ("prospects/contacts-2027.csv", text.encode()),
        ("porte-a-porte/tournee-1.csv", sheet),
    ):
        path = world.share / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        path.chmod(0o660)
    (world.share / "benevoles").mkdir()
    kept = world.contacts / f"{ELECTION}--prospects--20260101T040000Z.csv"
    kept.write_text(
        "prenom,nom,email,telephone,commune\r\n"
        + "".join(
            f"{p.prenom},{p.nom},{p.email},{p.telephone},{p.commune}\r\n" for p in people[:4]
        ),
        encoding="utf-8",
    )
    with SuppressionList(suppression_db(world.state), keys.hmac_key(world.secrets)) as store:
        store.add(
            [people[6].email],
            [],
            election="earlier",
            run_id="r0",
            now=__import__("datetime").datetime(2026, 1, 1),
        )
    return people


def every_version_text(world: DemoWorld) -> list[tuple[str, str, str]]:
    s3 = aws.client("s3", REGION)
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=world.bucket):
        for v in page.get("Versions", []):
            body = s3.get_object(Bucket=world.bucket, Key=v["Key"], VersionId=v["VersionId"])
            out.append((v["Key"], v["VersionId"], body["Body"].read().decode("utf-8")))
    return out


def open_request(world: DemoWorld, kind: str) -> str:
    proc = world.cli("person", "request", "open", "--kind", kind, "--received", "2027-04-01")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(":", 1)[0]


@pytest.fixture
def world(tmp_path: Path, emulator: Any) -> DemoWorld:
    return DemoWorld(tmp_path)


def test_access_request_lists_every_place_and_its_origin(world: DemoWorld) -> None:
    people = seed(world)
    person = people[0]  # in both versions of the prospects file and on the door-to-door sheet
    request = open_request(world, "access")
    out = world.root / "answer.json"
    proc = world.cli(
        "person",
        "export",
        "--request",
        request,
        "--email",
        person.email,
        "-o",
        str(out),
        "--lang",
        "fr",
    )
    assert proc.returncode == 0, proc.stderr
    # no personal data on the console: counts and places only
    for value in (person.email, person.nom, person.telephone, person.adresse):
        assert value not in proc.stdout + proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = json.loads(out.read_text(encoding="utf-8"))
    places = {(p["where"], p["location"], p["version_id"]) for p in doc["places"]}
    bucket_versions = {
        (key, vid) for key, vid, text in every_version_text(world) if person.email in text
    }
    assert len(bucket_versions) == 3  # both versions of the prospects file, the sheet
    assert {(f"s3://{world.bucket}/{k}", v) for k, v in bucket_versions} == {
        (loc, vid) for where, loc, vid in places if where == "bucket"
    }
    shares = {loc for where, loc, _v in places if where == "share"}
    assert shares == {
        f"{world.share}/prospects/contacts-2027.csv",
        f"{world.share}/porte-a-porte/tournee-1.csv",
    }
    assert {loc for where, loc, _v in places if where == "contacts"} == {
        str(next(world.contacts.glob("*.csv")))
    }
    # the origin of each place is the dataset's declared one, worded for the person
    origins = {(p["dataset"], p["origin"]) for p in doc["places"]}
    assert origins == {("prospects", "opt_in_form"), ("porte-a-porte", "door_to_door")}
    door = next(p for p in doc["places"] if p["dataset"] == "porte-a-porte")
    assert "porte-à-porte" in door["origin_text"] and door["kept_until"] == "2027-05-21"
    kept = next(p for p in doc["places"] if p["where"] == "contacts")
    assert "consentement" in kept["kept_because"]
    # every row found is the person's, with what it holds
    for p in doc["places"]:
        assert [r["data"]["email"] for r in p["rows"]] == [person.email]
    assert doc["opt_out"] == []
    assert "CNIL" in doc["rights"]
    log = requests.RequestLog(world.state).get(request)
    assert log.status == "answered" and log.due == "2027-05-01"


def test_erasure_leaves_no_copy_in_any_version_and_suppresses(world: DemoWorld) -> None:
    people = seed(world)
    person = people[1]  # in both prospects versions, the sheet and the share; not kept
    others_before = sum(
        text.count("@electeurs.example") for _k, _v, text in every_version_text(world)
    )
    request = open_request(world, "erasure")
    # by name and commune only: the phone and address in their rows are found too
    proc = world.cli(
        "person",
        "erase",
        "--request",
        request,
        "--name",
        f"{person.prenom} {person.nom}",
        "--commune",
        person.commune,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for value in (person.email, person.nom, person.telephone):
        assert value not in proc.stdout + proc.stderr
    texts = every_version_text(world)
    # (the address as a whole cell: "2 rue …" is also the end of "12 rue …")
    for value in (person.email, person.telephone, f";{person.adresse};"):
        assert not any(value in text for _k, _v, text in texts)
    for path in world.share.rglob("*.csv"):
        assert person.email not in path.read_text(encoding="utf-8")
    # the others are still there, in the current versions
    current = (
        aws.client("s3", REGION)
        .get_object(Bucket=world.bucket, Key="prospects/contacts-2027.csv")["Body"]
        .read()
        .decode("utf-8")
    )
    assert current.count("@electeurs.example") == 59
    assert current.splitlines()[0] == ";".join(fakedata.COLUMNS)  # delimiter kept
    assert sum(text.count("@electeurs.example") for _k, _v, text in texts) < others_before
    # on the suppression list, by the e-mail and phone found in their rows
    with SuppressionList.for_filtering(
        suppression_db(world.state), keys.hmac_key(world.secrets)
    ) as store:
        assert store.contains(person.email, None)
        assert store.contains(None, person.telephone)
    # the signed record: verifies, names places, no personal data, nothing left
    record_path = next((world.state / "dpo" / "erasures").glob(f"{request}--*.json"))
    raw = record_path.read_text(encoding="utf-8")
    for value in (person.email, person.nom, person.telephone, person.commune):
        assert value not in raw
    record = json.loads(raw)["certificate"]
    assert record["verification"] == {
        "rows_left": 0,
        "rows_pending_lifecycle": 0,
        "places_left": [],
    }
    assert record["totals"]["versions_deleted"] == 3
    assert world.cli("person", "verify", str(record_path)).returncode == 0
    tampered = world.root / "tampered.json"
    tampered.write_text(raw.replace('"rows_left": 0', '"rows_left": 1'), encoding="utf-8")
    assert world.cli("person", "verify", str(tampered)).returncode == 1
    assert requests.RequestLog(world.state).get(request).status == "closed"
    # a new search finds nothing
    find = world.cli("person", "find", "--email", person.email)
    assert find.returncode == 0 and "0 row(s) in 0 place(s)" in find.stdout


def test_request_deadline_alerts_before_it_lapses(world: DemoWorld) -> None:
    log = requests.RequestLog(world.state)
    from datetime import UTC, datetime

    now = datetime(2027, 4, 24, 9, tzinfo=UTC)
    r = log.open("access", date(2027, 3, 31), now)
    assert r.due == "2027-04-30"  # one month, clamped to the month's end
    found = requests.findings(log.all(), now.date(), now)
    assert [(f.rule_id, str(f.severity)) for f in found] == [("DPO-REQUEST-DUE", "medium")]
    later = datetime(2027, 5, 2, 9, tzinfo=UTC)
    assert [f.rule_id for f in requests.findings(log.all(), later.date(), later)] == [
        "DPO-REQUEST-LAPSED"
    ]
    log.update(r.id, later, status="closed")
    assert requests.findings(log.all(), later.date(), later) == []
