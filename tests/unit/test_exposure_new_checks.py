"""The checks peer tools have (KMS rotation, unscheduled key deletion, access points,
undeclared bucket kept forever) and the breach evidence read from the access logs.

Each check: a failing fixture and its clean twin. The inventory side runs against
moto's in-process AWS.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from moto import mock_aws
from tests.moto_env import use_in_process_aws

from isoloir import aws
from isoloir.exposure import inventory_kms, inventory_s3, registry
from isoloir.exposure.model import AccessPoint, Bucket, Inventory, KmsKey, S3Inventory
from isoloir.findings import Severity
from isoloir.policy import load_policies
from isoloir.policy.model import Policies

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
PAB_ON = dict.fromkeys(
    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
)


@pytest.fixture(scope="module")
def policies() -> Policies:
    return load_policies(ROOT / "policies")


def key(key_id: str = "k-1", **changes: object) -> KmsKey:
    base = {
        "key_id": key_id,
        "arn": f"arn:aws:kms:eu-west-3:{ACCOUNT}:key/{key_id}",
        "region": "eu-west-3",
        "manager": "CUSTOMER",
        "spec": "SYMMETRIC_DEFAULT",
        "state": "Enabled",
        "rotation": True,
    }
    base.update(changes)
    return KmsKey(**base)  # type: ignore[arg-type]


def election_bucket(policies: Policies, key_id: str) -> Bucket:
    return Bucket(
        name=policies.elections[0].bucket_name,
        region="eu-west-3",
        encryption=({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id},),
    )


def inv_of(
    policies: Policies,
    *,
    keys: tuple[KmsKey, ...] = (),
    buckets: tuple[Bucket, ...] = (),
    aps: tuple[AccessPoint, ...] = (),
    scheduled: frozenset[str] | None = frozenset(),
    now: datetime = NOW,
) -> Inventory:
    s3 = S3Inventory(account_id=ACCOUNT, account_public_access_block=PAB_ON)
    s3.buckets = list(buckets)
    s3.kms_keys = list(keys)
    s3.kms_read = True
    s3.access_points = list(aps)
    s3.access_points_read = True
    s3.retention_scheduled_keys = scheduled
    return Inventory(policies=policies, now=now, s3=s3)


def hits(inv: Inventory, check_id: str) -> list[registry.Hit]:
    return list(registry.discover()[check_id].evaluate(inv))


# ---------------------------------------------------------------- the checks


def test_rotation_off_flagged_and_election_key_ranks_higher(policies: Policies) -> None:
    other = key("k-other", rotation=False)
    mine = key("k-elec", rotation=False)
    inv = inv_of(policies, keys=(other, mine), buckets=(election_bucket(policies, "k-elec"),))
    found = {h.resource.rsplit("/", 1)[-1]: h for h in hits(inv, "kms_key_rotation_off")}
    assert set(found) == {"k-other", "k-elec"}
    assert found["k-elec"].severity == Severity.MEDIUM
    assert found["k-elec"].election == policies.elections[0].id
    assert found["k-other"].severity is None  # the check's own (low)
    # clean twins: rotation on, an AWS-managed key, an asymmetric key, rotation unread
    clean = inv_of(
        policies,
        keys=(
            key("a"),
            key("b", manager="AWS", rotation=False),
            key("c", spec="RSA_2048", rotation=None),
            key("d", rotation=None),
        ),
    )
    assert hits(clean, "kms_key_rotation_off") == []


def test_pending_deletion_not_scheduled_by_the_agent(policies: Policies) -> None:
    stray = key("k-stray", state="PendingDeletion", deletion_date=NOW + timedelta(days=7))
    assert [h.resource for h in hits(inv_of(policies, keys=(stray,)), ID_PD)] == [stray.arn]
    # clean twin: the same key, scheduled by the retention agent (its journal)
    assert hits(inv_of(policies, keys=(stray,), scheduled=frozenset({stray.arn})), ID_PD) == []


ID_PD = "kms_key_pending_deletion_unscheduled"


def test_pending_deletion_of_an_election_key(policies: Policies) -> None:
    e = policies.elections[0]
    k = key("k-elec", state="PendingDeletion")
    bucket = election_bucket(policies, k.arn)
    # before the retention date: s3_kms_key_pending_deletion owns it (no duplicate)
    assert hits(inv_of(policies, keys=(k,), buckets=(bucket,)), ID_PD) == []
    after = datetime.combine(e.retention_due, datetime.min.time(), UTC) + timedelta(days=2)
    # after it, not in the journal: someone else shredded the election's key
    found = hits(inv_of(policies, keys=(k,), buckets=(bucket,), now=after), ID_PD)
    assert [h.election for h in found] == [e.id]
    # the agent's own crypto-shred is intended
    own = inv_of(policies, keys=(k,), buckets=(bucket,), now=after, scheduled=frozenset({k.arn}))
    assert hits(own, ID_PD) == []
    # journal unreadable: nothing can be said about an election key
    unread = inv_of(policies, keys=(k,), buckets=(bucket,), now=after, scheduled=None)
    assert hits(unread, ID_PD) == []


def test_access_point_public_access_block(policies: Policies) -> None:
    bucket = policies.elections[0].bucket_name
    half = {**PAB_ON, "RestrictPublicBuckets": False}
    inv = inv_of(policies, aps=(AccessPoint("ap-ouvert", "eu-west-3", bucket, half),))
    found = hits(inv, "s3_access_point_public_access_block")
    assert [h.evidence["flags_off"] for h in found] == [["RestrictPublicBuckets"]]
    assert found[0].severity == Severity.HIGH  # it serves an election's bucket
    clean = inv_of(
        policies,
        aps=(
            AccessPoint("ap-ferme", "eu-west-3", bucket, PAB_ON),
            AccessPoint("ap-illisible", "eu-west-3", bucket, None),
        ),
    )
    assert hits(clean, "s3_access_point_public_access_block") == []


def test_undeclared_bucket_without_expiration(policies: Policies) -> None:
    forever = Bucket(name="campagne-export-2027", region="eu-west-3")
    expiring = Bucket(
        name="campagne-tmp-2027",
        region="eu-west-3",
        lifecycle=({"ID": "x", "Status": "Enabled", "Expiration": {"Days": 30}},),
    )
    disabled = Bucket(
        name="campagne-vieux-2027",
        region="eu-west-3",
        lifecycle=({"ID": "x", "Status": "Disabled", "Expiration": {"Days": 30}},),
    )
    logs = Bucket(name=policies.baseline.log_bucket_name, region="eu-west-3")
    unread = Bucket(
        name="campagne-x-2027", region="eu-west-3", errors={"lifecycle": "AccessDenied"}
    )
    inv = inv_of(policies, buckets=(forever, expiring, disabled, logs, unread))
    found = [h.resource for h in hits(inv, "s3_bucket_undeclared_no_expiration")]
    assert found == ["s3://campagne-export-2027", "s3://campagne-vieux-2027"]
    # beside, not instead of, the undeclared-bucket finding
    assert "s3://campagne-export-2027" in [h.resource for h in hits(inv, "s3_bucket_undeclared")]


def test_new_checks_declare_their_permissions() -> None:
    checks = registry.discover()
    assert "kms:GetKeyRotationStatus" in checks["kms_key_rotation_off"].permissions
    assert "kms:ListKeys" in checks[ID_PD].permissions
    assert "s3:ListAccessPoints" in checks["s3_access_point_public_access_block"].permissions
    perms = registry.permissions()
    assert "s3:GetBucketLogging" in perms and "s3:GetLifecycleConfiguration" in perms


def test_retention_journal_read_only(tmp_path: Path) -> None:
    db = tmp_path / "journal.sqlite"
    assert inventory_kms.retention_scheduled_keys(db) == frozenset()  # no journal: none
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE steps (seq INTEGER PRIMARY KEY, run_id TEXT, kind TEXT, dataset TEXT,"
        " payload TEXT, status TEXT, result TEXT)"
    )
    arn = f"arn:aws:kms:eu-west-3:{ACCOUNT}:key/k-shred"
    rows = [
        ("kms", "done", {"key_id": arn, "state": "PendingDeletion"}),
        ("kms", "done", {"deferred_reason": "objects remain", "key_id": "k-deferred"}),
        ("kms", "planned", None),
    ]
    for kind, status, result in rows:
        con.execute(
            "INSERT INTO steps (run_id, kind, dataset, payload, status, result)"
            " VALUES ('r', ?, '', '{}', ?, ?)",
            (kind, status, json.dumps(result) if result else None),
        )
    con.commit()
    con.close()
    assert inventory_kms.retention_scheduled_keys(db) == frozenset({arn, "k-shred"})
    (tmp_path / "bad.sqlite").write_bytes(b"not a database at all" * 10)
    assert inventory_kms.retention_scheduled_keys(tmp_path / "bad.sqlite") is None


# ---------------------------------------------------------------- the inventory (moto)


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    use_in_process_aws(monkeypatch, ISOLOIR_STATE_DIR=str(tmp_path / "state"))
    with mock_aws():
        yield


def _bucket(s3: object, name: str) -> None:
    s3.create_bucket(  # type: ignore[attr-defined]
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
    )
    s3.put_bucket_acl(Bucket=name, ACL="log-delivery-write")  # type: ignore[attr-defined]


OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"


def _log(bucket: str, key: str, when: str, requester: str, op: str = "REST.GET.OBJECT") -> str:
    return (
        f"{OWNER} {bucket} [{when}] 192.0.2.44 {requester} 3E57427F3EXAMPLE {op} {key} "
        f'"GET /{bucket}/{key} HTTP/1.1" 200 - 1024 1024 7 6 "-" "curl/8.0" - '
        "s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3= SigV4 "
        f"ECDHE-RSA-AES128-GCM-SHA256 AuthHeader {bucket}.s3.eu-west-3.amazonaws.com "
        "TLSv1.2 - - eu-west-3"
    )


def test_public_object_finding_carries_outside_reads_from_the_logs(
    aws_env: None, policies: Policies
) -> None:
    s3 = aws.client("s3", "eu-west-3")
    name = policies.elections[0].bucket_name
    logs = policies.baseline.log_bucket_names.get("eu-west-3") or policies.baseline.log_bucket_name
    _bucket(s3, name)
    _bucket(s3, logs)
    s3.put_bucket_logging(
        Bucket=name,
        BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": logs, "TargetPrefix": f"s3/{name}/"}
        },
    )
    key_name = "porte-a-porte/liste.csv"
    s3.put_object(Bucket=name, Key=key_name, Body=b"nom;ville\nDupont;Exempleville\n")
    s3.put_object_acl(Bucket=name, Key=key_name, ACL="public-read")
    # log objects are filtered on their delivery time: the records are dated around now
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    since = base + timedelta(hours=1)

    def at(minutes: int) -> str:
        return (base + timedelta(minutes=minutes)).strftime("%d/%b/%Y:%H:%M:%S +0000")

    inside = f"arn:aws:iam::{ACCOUNT}:user/tresorier"
    lines = [
        _log(name, key_name, at(30), "-"),  # before the exposure
        _log(name, key_name, at(90), "-"),  # outside: counts
        _log(name, key_name, at(100), inside),  # inside
        _log(name, key_name, at(120), "arn:aws:iam::999988887777:user/v"),  # outside
        _log(name, key_name, at(130), "-", op="REST.HEAD.OBJECT"),  # metadata only
        "a line that is not a log record",
    ]
    s3.put_object(Bucket=logs, Key=f"s3/{name}/2027-03-01-11-15-00-ABCDEF", Body="\n".join(lines))
    inv = inventory_s3.fetch(policies, sample=False, log_since=since)
    bucket = next(b for b in inv.buckets if b.name == name)
    assert (bucket.logging_target, bucket.logging_prefix) == (logs, f"s3/{name}/")
    full = Inventory(policies=policies, now=NOW, s3=inv)
    found = [h for h in hits(full, "s3_object_public_acl") if h.resource.endswith(key_name)]
    assert len(found) == 1
    ev = found[0].evidence
    assert ev["outside_reads"] == 2
    assert ev["outside_requesters"] == 2
    assert ev["first_read"] == (base + timedelta(minutes=90)).isoformat()
    assert ev["last_read"] == (base + timedelta(minutes=120)).isoformat()
    assert ev["logs_read_until"] == (base + timedelta(minutes=130)).isoformat()
    # our garbage line, plus the records moto itself writes (request line and user
    # agent unquoted, unlike AWS's documented format): counted, never raised
    assert ev["log_lines_malformed"] >= 1
    assert "192.0.2.44" not in json.dumps(ev)


def test_log_bounds_are_said_and_a_log_error_never_fails_the_scan(
    aws_env: None, policies: Policies, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = aws.client("s3", "eu-west-3")
    name = policies.elections[0].bucket_name
    _bucket(s3, name)
    _bucket(s3, "journaux-ailleurs")
    s3.put_bucket_logging(
        Bucket=name,
        BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": "journaux-ailleurs", "TargetPrefix": "s3/"}
        },
    )
    s3.put_object(Bucket=name, Key="a.csv", Body=b"x")
    s3.put_object_acl(Bucket=name, Key="a.csv", ACL="public-read")
    for i in range(3):
        s3.put_object(Bucket="journaux-ailleurs", Key=f"s3/2027-03-01-1{i}", Body=b"")
    since = datetime(2000, 1, 1, tzinfo=UTC)
    from isoloir.exposure import accesslog

    batch = accesslog.read_logs(s3, "journaux-ailleurs", "s3/", since, max_objects=2)
    assert batch.objects == 2 and batch.truncated
    ev = accesslog.evidence_for(batch, name, "a.csv", since, ACCOUNT)
    assert ev["logs_truncated"] is True and ev["logs_read_until"] == "none"
    # the log bucket disappears: the scan goes on, the evidence says the logs were unread
    for obj in s3.list_objects_v2(Bucket="journaux-ailleurs").get("Contents", []):
        s3.delete_object(Bucket="journaux-ailleurs", Key=obj["Key"])
    s3.delete_bucket(Bucket="journaux-ailleurs")
    inv = inventory_s3.fetch(policies, sample=False, log_since=since)
    bucket = next(b for b in inv.buckets if b.name == name)
    assert bucket.read_evidence["a.csv"]["logs_read_until"] == "none"
    assert f"logs:{name}" in inv.errors
    assert "logs" not in bucket.errors  # the bucket itself was read in full


def test_kms_and_access_points_inventoried(aws_env: None, policies: Policies) -> None:
    kms = aws.client("kms", "eu-west-3")
    on = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=on)
    off = kms.create_key()["KeyMetadata"]["KeyId"]
    gone = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=gone, PendingWindowInDays=7)
    s3 = aws.client("s3", "eu-west-3")
    _bucket(s3, "campagne-export-2027")
    control = inventory_s3.control_client("eu-west-3")
    control.create_access_point(
        AccountId=ACCOUNT,
        Name="ap-ouvert",
        Bucket="campagne-export-2027",
        PublicAccessBlockConfiguration={**PAB_ON, "RestrictPublicBuckets": False},
    )
    inv = inventory_s3.fetch(policies, sample=False)
    assert inv.kms_read and inv.access_points_read
    keys = {k.key_id: k for k in inv.kms_keys}
    assert (keys[on].rotation, keys[off].rotation, keys[gone].state) == (
        True,
        False,
        "PendingDeletion",
    )
    assert inv.retention_scheduled_keys == frozenset()
    full = Inventory(policies=policies, now=NOW, s3=inv)
    assert [h.resource.rsplit("/", 1)[-1] for h in hits(full, "kms_key_rotation_off")] == [off]
    assert [h.resource.rsplit("/", 1)[-1] for h in hits(full, ID_PD)] == [gone]
    ap = hits(full, "s3_access_point_public_access_block")
    assert [h.evidence["flags_off"] for h in ap] == [["RestrictPublicBuckets"]]
    assert [h.resource for h in hits(full, "s3_bucket_undeclared_no_expiration")] == [
        "s3://campagne-export-2027"
    ]


# ---------------------------------------------------------------- the demo's clean deploy

NEW_CHECKS = (
    "kms_key_rotation_off",
    ID_PD,
    "s3_access_point_public_access_block",
    "s3_bucket_undeclared_no_expiration",
)


def test_infra_keys_rotate_and_creates_no_access_point() -> None:
    """What the clean deploy creates (infra/modules/*.tf), read from the sources."""
    tf = {p: p.read_text() for p in (ROOT / "infra" / "modules").glob("*/*.tf")}
    keys = {p: t.count('resource "aws_kms_key"') for p, t in tf.items()}
    rotating = {p: t.count("enable_key_rotation     = true") for p, t in tf.items()}
    assert sum(keys.values()) >= 2
    assert keys == {p: rotating[p] for p in keys}  # every key rotates
    assert not any("aws_s3_access_point" in t for t in tf.values())


def test_no_new_finding_on_the_clean_deploy(policies: Policies) -> None:
    """Election key and volume key with rotation on, the access-log buckets (known,
    whatever their lifecycle), no access point, no key pending deletion."""
    elec = key("k-elec")
    volumes = key("k-volumes")
    logs = tuple(
        Bucket(name=n, region=r) for r, n in policies.baseline.log_bucket_names.items()
    ) or (Bucket(name=policies.baseline.log_bucket_name, region="eu-west-3"),)
    election = election_bucket(policies, elec.arn)
    inv = inv_of(policies, keys=(elec, volumes), buckets=(election, *logs))
    for check_id in NEW_CHECKS:
        assert hits(inv, check_id) == [], check_id


def test_public_bucket_finding_carries_the_bucket_wide_reads(policies: Policies) -> None:
    from isoloir.exposure.model import ALL_USERS, Grant

    reads = {"outside_reads": 4, "outside_requesters": 1, "logs_read_until": "none"}
    b = Bucket(
        name="campagne-export-2027",
        region="eu-west-3",
        acl=(Grant(ALL_USERS, "READ"),),
        read_evidence={"": reads},
    )
    s3 = S3Inventory(account_id=ACCOUNT, account_public_access_block={})
    s3.buckets = [b]
    found = hits(Inventory(policies=policies, now=NOW, s3=s3), "s3_bucket_public_acl")
    assert [h.evidence["outside_reads"] for h in found] == [4]


def test_no_access_logging_is_said(aws_env: None, policies: Policies) -> None:
    s3 = aws.client("s3", "eu-west-3")
    _bucket(s3, "campagne-export-2027")
    s3.put_object(Bucket="campagne-export-2027", Key="a.csv", Body=b"x")
    s3.put_object_acl(Bucket="campagne-export-2027", Key="a.csv", ACL="public-read")
    inv = inventory_s3.fetch(policies, sample=False)
    ev = inv.buckets[0].read_evidence["a.csv"]
    assert ev == {"logs_read_until": "none", "access_logging": False}
    assert not any(k.startswith("logs:") for k in inv.errors)
