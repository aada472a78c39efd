"""Findings a real deploy of the example policies must not raise, each with the
twin that must still be raised: the access-log bucket's SSE-S3 encryption, and
the agents' own system user in the election groups."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from isoloir.exposure import inventory_identity, registry
from isoloir.exposure.model import Bucket, IdentityInventory, Inventory, S3Inventory
from isoloir.policy import load_policies
from isoloir.policy.model import Policies

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
EL = "exempleville-2027"
GROUP = f"el-{EL}"


@pytest.fixture(scope="module")
def policies() -> Policies:
    return load_policies(ROOT / "policies")


def _hits(inv: Inventory, check_id: str) -> list[registry.Hit]:
    return list(registry.discover()[check_id].evaluate(inv))


def _bucket(name: str, algorithm: str | None) -> Bucket:
    enc = ({"SSEAlgorithm": algorithm},) if algorithm else ()
    return Bucket(name=name, region="eu-west-3", encryption=enc)


def _s3(policies: Policies, *buckets: Bucket) -> Inventory:
    s3 = S3Inventory(account_id="123456789012", buckets=list(buckets))
    return Inventory(policies=policies, now=NOW, s3=s3)


def test_log_bucket_with_sse_s3_is_not_flagged(policies: Policies) -> None:
    log = policies.baseline.log_bucket_name
    assert log == "mouvement-exemple-access-logs"
    election = next(n for n, e in policies.bucket_names.items() if e == EL)
    inv = _s3(policies, _bucket(log, "AES256"), _bucket(election, "AES256"))
    found = _hits(inv, "s3_bucket_encryption")
    # the election bucket with AES256 is still flagged (it needs its KMS key)
    assert [(h.resource, h.election) for h in found] == [(f"s3://{election}", EL)]
    # neither is it a shadow bucket
    assert _hits(inv, "s3_bucket_undeclared") == []
    # KMS (or DSSE-KMS) is "better" than SSE-S3 for the log bucket too
    for algorithm in ("aws:kms", "aws:kms:dsse"):
        assert _hits(_s3(policies, _bucket(log, algorithm)), "s3_bucket_encryption") == []


def test_every_regions_log_bucket_is_known(policies: Policies) -> None:
    """Terraform makes one access-log bucket per allowed region (a suffix outside
    the default region); none of them is a shadow bucket or wants a KMS key."""
    names = policies.baseline.log_bucket_names
    assert names == {
        "eu-west-3": "mouvement-exemple-access-logs",
        "eu-west-1": "mouvement-exemple-access-logs-eu-west-1",
        "eu-central-1": "mouvement-exemple-access-logs-eu-central-1",
    }
    inv = _s3(policies, *(_bucket(n, "AES256") for n in names.values()))
    assert _hits(inv, "s3_bucket_encryption") == []
    assert _hits(inv, "s3_bucket_undeclared") == []
    # a look-alike name in a region that is not allowed is still a shadow bucket
    odd = _s3(policies, _bucket("mouvement-exemple-access-logs-us-east-1", "AES256"))
    assert [h.resource for h in _hits(odd, "s3_bucket_undeclared")] == [
        "s3://mouvement-exemple-access-logs-us-east-1"
    ]


def test_log_bucket_without_encryption_is_flagged(policies: Policies) -> None:
    log = policies.baseline.log_bucket_name
    (hit,) = _hits(_s3(policies, _bucket(log, None)), "s3_bucket_encryption")
    assert hit.resource == f"s3://{log}" and "SSE-S3" in hit.message
    assert hit.evidence == {"algorithms": [], "log_bucket": True}


def test_undeclared_bucket_with_sse_s3_is_flagged(policies: Policies) -> None:
    found = _hits(_s3(policies, _bucket("copie-fichier", "AES256")), "s3_bucket_encryption")
    assert [h.resource for h in found] == ["s3://copie-fichier"]


def _identity(policies: Policies, tmp_path: Path, passwd: str, group: str) -> Inventory:
    (tmp_path / "passwd").write_text(passwd)
    (tmp_path / "group").write_text(group)
    ident = IdentityInventory(iam_fetched=True)
    ident.host_users = inventory_identity.read_host_users(
        {GROUP},
        group_file=tmp_path / "group",
        passwd_file=tmp_path / "passwd",
        totp_status_dir=tmp_path / "totp-status",
    )
    return Inventory(policies=policies, now=NOW, identity=ident)


def test_system_user_of_the_agents_is_not_a_person(policies: Policies, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "cfictive").mkdir(parents=True)
    (tmp_path / "totp-status").mkdir()
    (tmp_path / "totp-status" / "cfictive").write_text("state=enrolled\n")  # written by root
    passwd = (
        "root:x:0:0:root:/root:/bin/bash\n"
        "isoloir:x:998:998:Isoloir agents:/var/lib/isoloir:/usr/sbin/nologin\n"
        f"cfictive:x:1001:1001::{home}/cfictive:/bin/bash\n"
        f"intrus:x:1002:1002::{home}/intrus:/bin/bash\n"
        # a person's uid with a no-login shell is still a person (Samba needs no shell)
        f"sansshell:x:1003:1003::{home}/sansshell:/usr/sbin/nologin\n"
        # a system uid that can log in is not a service account either
        "svc:x:997:997::/var/lib/svc:/bin/sh\n"
    )
    group = f"{GROUP}:x:2001:isoloir,cfictive,intrus,sansshell,svc\n"
    inv = _identity(policies, tmp_path, passwd, group)
    by_name = {u.name: u for u in inv.identity.host_users} if inv.identity else {}
    assert by_name["isoloir"].service_account
    assert not any(by_name[n].service_account for n in ("cfictive", "intrus", "sansshell", "svc"))
    assert sorted(h.resource for h in _hits(inv, "account_not_in_policies")) == [
        "host-user:intrus",
        "host-user:sansshell",
        "host-user:svc",
    ]
    assert sorted(h.resource for h in _hits(inv, "host_user_no_totp")) == [
        "host-user:intrus",
        "host-user:sansshell",
        "host-user:svc",
    ]


def test_system_user_by_primary_group_is_not_flagged(policies: Policies, tmp_path: Path) -> None:
    passwd = "isoloir:x:998:2001:Isoloir agents:/nonexistent:/bin/false\n"
    inv = _identity(policies, tmp_path, passwd, f"{GROUP}:x:2001:\n")
    assert inv.identity is not None and [u.name for u in inv.identity.host_users] == ["isoloir"]
    assert _hits(inv, "account_not_in_policies") == []
    assert _hits(inv, "host_user_no_totp") == []
