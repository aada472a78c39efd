"""Every check over an in-process inventory: the misconfiguration is flagged,
its correct twin is not."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from isoloir.exposure import registry
from isoloir.exposure.model import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    AccessKey,
    Bucket,
    Entry,
    Grant,
    HostUser,
    IamUser,
    IdentityInventory,
    Inventory,
    ObjectSample,
    S3Inventory,
    SambaConfig,
    SambaShare,
    SharesInventory,
    ShareTree,
    StrayFile,
)
from isoloir.exposure.pii import PiiReport
from isoloir.findings import Severity
from isoloir.policy import load_policies

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
EL = "exempleville-2027"
GOOD_BUCKET = "mouvement-exemple-exempleville-2027"
PAB_ON = dict.fromkeys(
    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
)
PII = PiiReport({"email": 40, "phone": 38}, 40, 900, 1024, "text")
TLS = {
    "Sid": "DenyInsecureTransport",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


@pytest.fixture(scope="module")
def policies():  # type: ignore[no-untyped-def]
    return load_policies(ROOT / "policies")


def good_bucket(name: str = GOOD_BUCKET, **changes: object) -> Bucket:
    b = Bucket(
        name=name,
        region="eu-west-3",
        acl=(Grant("owner-id", "FULL_CONTROL"),),
        policy={"Version": "2012-10-17", "Statement": [TLS]},
        public_access_block=PAB_ON,
        ownership="BucketOwnerEnforced",
        encryption=({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "arn:aws:kms:k"},),
        versioning="Enabled",
        lifecycle=tuple(
            {
                "ID": f"retention:{prefix}",
                "Status": "Enabled",
                "Filter": {"Prefix": prefix},
                # a backstop 14 days after the retention date (2027-05-21)
                "Expiration": {"Date": datetime(2027, 6, 4, tzinfo=UTC)},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            }
            for prefix in ("porte-a-porte/", "prospects/")
        ),
        kms_key_state="Enabled",
    )
    for key, value in changes.items():
        setattr(b, key, value)
    return b


def s3_inv(policies, *buckets: Bucket, account_pab=PAB_ON, now=NOW) -> Inventory:  # type: ignore[no-untyped-def]
    s3 = S3Inventory(account_id="123456789012", account_public_access_block=account_pab)
    s3.buckets = list(buckets)
    return Inventory(policies=policies, now=now, s3=s3)


def hits(inv: Inventory, check_id: str) -> list[registry.Hit]:
    chk = registry.discover()[check_id]
    return list(chk.evaluate(inv))


def test_registry_ids_match_files_and_metadata_complete() -> None:
    checks = registry.discover()
    assert len(checks) >= 30
    for cid, chk in checks.items():
        assert chk.evaluate.__module__.endswith("." + cid)
        assert chk.title and chk.reflex and chk.remediation and chk.permissions
    with pytest.raises(registry.RegistryError):

        @registry.check(
            id="not_this_module",
            title="t",
            severity=Severity.LOW,
            scope="s3",
            reflex="r",
            remediation="x",
        )
        def evaluate(inv: Inventory):  # type: ignore[no-untyped-def]
            return []


def test_clean_inventory_has_no_s3_findings(policies) -> None:  # type: ignore[no-untyped-def]
    results = registry.run(s3_inv(policies, good_bucket()), scopes=["s3"])
    assert [r.finding.rule_id for r in results] == []


def test_bucket_public_acl(policies) -> None:  # type: ignore[no-untyped-def]
    pub = good_bucket(acl=(Grant(ALL_USERS, "READ"), Grant(AUTHENTICATED_USERS, "WRITE")))
    pub.public_access_block = None
    assert len(hits(s3_inv(policies, pub, account_pab=None), "s3_bucket_public_acl")) == 1
    # twin: the same grants neutralised by IgnorePublicAcls at account level
    assert hits(s3_inv(policies, pub, account_pab=PAB_ON), "s3_bucket_public_acl") == []


def test_object_public_acl_with_personal_data_is_a_breach(policies) -> None:  # type: ignore[no-untyped-def]
    b = good_bucket(ownership="ObjectWriter", public_access_block=None)
    b.object_acls = {
        "prospects/list.csv": (Grant("owner", "FULL_CONTROL"), Grant(ALL_USERS, "READ")),
        "prospects/private.csv": (Grant("owner", "FULL_CONTROL"),),
    }
    b.public_samples = (ObjectSample("prospects/list.csv", 90_000, PII),)
    found = hits(s3_inv(policies, b, account_pab=None), "s3_object_public_acl")
    assert [h.resource for h in found] == [f"s3://{GOOD_BUCKET}/prospects/list.csv"]
    hit = found[0]
    assert hit.severity == Severity.CRITICAL
    assert "72 hours" in hit.text() and "art. 33" in hit.text()
    draft = hit.evidence["breach_register_draft"]
    assert draft["records_estimated"] == 900
    # E1: a party's contacts file reveals presumed political opinions (art. 9): high risk,
    # the persons are to be informed (art. 34), with phones and e-mails only (no NIR/IBAN)
    assert draft["data_categories"] == [
        "phone numbers",
        "email addresses",
        "presumed political opinions (RGPD art. 9)",
    ]
    assert draft["special_category"] is True and draft["risk"] == "high risk"
    assert draft["inform_data_subjects"] is True
    assert "political opinions" in draft["likely_consequences"]
    assert "art. 34" in hit.text() and "inform them" in hit.text()
    assert draft["notify_authority_by"] == (NOW + timedelta(hours=72)).isoformat()


@pytest.mark.parametrize(
    ("condition", "public"),
    [
        (None, True),
        ({"IpAddress": {"aws:SourceIp": ["203.0.113.0/24"]}}, False),
        ({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}, False),
        ({"StringEquals": {"aws:PrincipalOrgID": "o-exemple"}}, False),
        (
            {
                "StringEquals": {"aws:PrincipalOrgID": "o-x"},
                "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
            },
            False,
        ),
        ({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}, True),
        ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, True),
        ({"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}}, True),
        ({"StringLike": {"aws:PrincipalOrgID": "*"}}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, True),
    ],
)
def test_bucket_policy_principal_star(policies, condition, public) -> None:  # type: ignore[no-untyped-def]
    st = {"Sid": "Open", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject",
          "Resource": "arn:aws:s3:::b/*"}  # fmt: skip
    if condition:
        st["Condition"] = condition
    b = good_bucket(policy={"Statement": [TLS, st]}, public_access_block=None)
    found = hits(s3_inv(policies, b, account_pab=None), "s3_bucket_policy_public")
    assert bool(found) is public


def test_public_access_block_bucket_and_account(policies) -> None:  # type: ignore[no-untyped-def]
    off = good_bucket(public_access_block={**PAB_ON, "BlockPublicPolicy": False})
    # account block covers the bucket: no bucket finding
    assert hits(s3_inv(policies, off), "s3_bucket_public_access_block") == []
    assert hits(s3_inv(policies, off), "s3_account_public_access_block") == []
    found = hits(s3_inv(policies, off, account_pab=None), "s3_bucket_public_access_block")
    assert found and found[0].evidence["flags_off"] == ["BlockPublicPolicy"]
    acct = hits(s3_inv(policies, good_bucket(), account_pab=None), "s3_account_public_access_block")
    assert len(acct) == 1 and len(acct[0].evidence["flags_off"]) == 4


def test_ownership_encryption_versioning_tls(policies) -> None:  # type: ignore[no-untyped-def]
    bad = good_bucket(
        ownership="ObjectWriter",
        encryption=({"SSEAlgorithm": "AES256"},),
        versioning="Suspended",
        policy=None,
    )
    inv = s3_inv(policies, bad)
    for cid in ("s3_bucket_acls_enabled", "s3_bucket_encryption", "s3_bucket_versioning",
                "s3_bucket_tls_only"):  # fmt: skip
        assert len(hits(inv, cid)) == 1, cid
    assert hits(s3_inv(policies, good_bucket(encryption=())), "s3_bucket_encryption")
    twin = s3_inv(policies, good_bucket(encryption=({"SSEAlgorithm": "aws:kms:dsse"},)))
    assert hits(twin, "s3_bucket_encryption") == []


def test_lifecycle_matching_retention(policies) -> None:  # type: ignore[no-untyped-def]
    late = good_bucket(
        lifecycle=(
            {
                "Status": "Enabled",
                "Filter": {},
                "NoncurrentVersionExpiration": {},
                "Expiration": {"Date": datetime(2028, 1, 1, tzinfo=UTC)},
            },
        )  # fmt: skip
    )
    assert hits(s3_inv(policies, late), "s3_bucket_lifecycle_retention")
    assert hits(s3_inv(policies, good_bucket(lifecycle=())), "s3_bucket_lifecycle_retention")
    no_noncurrent = good_bucket(
        lifecycle=tuple(
            {
                "Status": "Enabled",
                "Filter": {"Prefix": p},
                "Expiration": {"Date": "2027-06-01T00:00:00Z"},
            }
            for p in ("porte-a-porte/", "prospects/")
        )  # fmt: skip
    )
    assert hits(s3_inv(policies, no_noncurrent), "s3_bucket_lifecycle_retention")
    assert hits(s3_inv(policies, good_bucket()), "s3_bucket_lifecycle_retention") == []


def test_region_and_shadow_bucket(policies) -> None:  # type: ignore[no-untyped-def]
    us = good_bucket(region="us-east-1")
    shadow = good_bucket(name="campagne-export-2027")
    logs = good_bucket(name="mouvement-exemple-access-logs")
    inv = s3_inv(policies, us, shadow, logs)
    assert [h.resource for h in hits(inv, "s3_bucket_region")] == [f"s3://{GOOD_BUCKET}"]
    assert [h.resource for h in hits(inv, "s3_bucket_undeclared")] == ["s3://campagne-export-2027"]


def test_kms_key_deletion_intended_after_retention(policies) -> None:  # type: ignore[no-untyped-def]
    pending = good_bucket(kms_key_state="PendingDeletion")
    assert hits(s3_inv(policies, pending), "s3_kms_key_pending_deletion")
    after = datetime(2027, 6, 1, tzinfo=UTC)  # retention due 2027-05-21: an intended shred
    assert hits(s3_inv(policies, pending, now=after), "s3_kms_key_pending_deletion") == []


def test_one_unreadable_bucket_does_not_hide_the_others(policies) -> None:  # type: ignore[no-untyped-def]
    broken = Bucket(name="other-bucket", errors={"location": "AccessDenied"})
    pub = good_bucket(acl=(Grant(ALL_USERS, "READ"),), public_access_block=None)
    results = registry.run(s3_inv(policies, broken, pub, account_pab=None), scopes=["s3"])
    rules = {r.finding.rule_id for r in results if r.finding.resource == f"s3://{GOOD_BUCKET}"}
    assert "s3_bucket_public_acl" in rules


# ------------------------------------------------------------------ shares


def tree(entries: list[Entry], **kw: object) -> ShareTree:
    t = ShareTree(
        election=EL,
        root=b"/srv/elections/" + EL.encode(),
        group="el-" + EL,
        gid=5001,
        other_election_gids={5002: "autre-2027"},
        entries=entries,
    )
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def shares_inv(policies, *trees: ShareTree, samba=None, stray=()) -> Inventory:  # type: ignore[no-untyped-def]
    return Inventory(
        policies=policies,
        now=NOW,
        shares=SharesInventory(trees=list(trees), samba=samba, stray=list(stray)),
    )


BASE = b"/srv/elections/exempleville-2027"


def test_world_accessible_file_with_personal_data_is_critical(policies) -> None:  # type: ignore[no-untyped-def]
    entries = [
        Entry(BASE + b"/prospects/liste.csv", "file", 0o100644, 0, 5001, 90_000, pii=PII),
        Entry(BASE + b"/prospects/notes.txt", "file", 0o100606, 0, 5001, 10),
        Entry(BASE + b"/prospects/ok.csv", "file", 0o100640, 0, 5001, 10, pii=PII),
    ]
    found = hits(shares_inv(policies, tree(entries)), "share_world_accessible")
    by = {h.resource: h for h in found}
    assert set(by) == {
        f"{BASE.decode()}/prospects/liste.csv",
        f"{BASE.decode()}/prospects/notes.txt",
    }
    assert by[f"{BASE.decode()}/prospects/liste.csv"].severity == Severity.CRITICAL
    assert by[f"{BASE.decode()}/prospects/notes.txt"].severity is Severity.HIGH


def test_setgid_default_acl_foreign_group_symlinks(policies) -> None:  # type: ignore[no-untyped-def]
    entries = [
        Entry(BASE + b"/a", "dir", 0o40770, 0, 5001, has_default_acl=False),
        Entry(BASE + b"/b", "dir", 0o42770, 0, 5001, has_default_acl=True),
        Entry(BASE + b"/c.csv", "file", 0o100660, 0, 5002),
        Entry(BASE + b"/d.csv", "file", 0o100660, 0, 5001),
        Entry(BASE + b"/out", "link", 0o120777, 0, 5001, link_target=b"../../../etc/shadow"),
        Entry(BASE + b"/in", "link", 0o120777, 0, 5001, link_target=b"b/x.csv"),
        Entry(BASE + b"/abs", "link", 0o120777, 0, 5001, link_target=b"/home/x"),
    ]
    inv = shares_inv(policies, tree(entries))
    assert [h.resource for h in hits(inv, "share_setgid_missing")] == [BASE.decode() + "/a"]
    assert [h.resource for h in hits(inv, "share_default_acl_missing")] == [BASE.decode() + "/a"]
    assert [h.resource for h in hits(inv, "share_foreign_group")] == [BASE.decode() + "/c.csv"]
    assert sorted(h.resource for h in hits(inv, "share_symlink_escape")) == [
        BASE.decode() + "/abs",
        BASE.decode() + "/out",
    ]
    assert hits(inv, "share_world_accessible") == []


def test_non_utf8_name_is_displayed_escaped(policies) -> None:  # type: ignore[no-untyped-def]
    e = Entry(BASE + b"/caf\xe9.csv", "file", 0o100644, 0, 5001)
    (hit,) = hits(shares_inv(policies, tree([e])), "share_world_accessible")
    assert hit.resource.endswith("caf\\xe9.csv")
    assert hit.target.path == BASE + b"/caf\xe9.csv"
    json.dumps(hit.resource).encode("utf-8")


def test_unencrypted_filesystem_and_incomplete_scan(policies) -> None:  # type: ignore[no-untyped-def]
    plain = tree([], encrypted=False, device="/dev/vda1", fs_type="ext4", mount_point="/")
    crypt = tree([], encrypted=True)
    unknown = tree([], encrypted=None)
    assert len(hits(shares_inv(policies, plain), "share_unencrypted_filesystem")) == 1
    assert hits(shares_inv(policies, crypt, unknown), "share_unencrypted_filesystem") == []
    blocked = tree([], unreadable=[BASE + b"/locked"])
    assert len(hits(shares_inv(policies, blocked), "share_scan_incomplete")) == 1


def samba(globals_: dict[str, str], shares: dict[str, dict[str, str]]) -> SambaConfig:
    return SambaConfig(
        path="/etc/samba/smb.conf",
        globals=globals_,
        shares=tuple(SambaShare(n, p) for n, p in shares.items()),
    )


GOOD_GLOBALS = {
    "map to guest": "Never",
    "server min protocol": "SMB3_11",
    "server smb encrypt": "required",
    "guest ok": "No",
}


def test_samba_checks_and_twins(policies) -> None:  # type: ignore[no-untyped-def]
    good = samba(GOOD_GLOBALS, {EL: {"path": "/srv/elections/" + EL}, "homes": {}})
    inv = shares_inv(policies, samba=good)
    for cid in ("samba_guest_ok", "samba_map_to_guest", "samba_min_protocol",
                "samba_encryption_off", "samba_share_undeclared"):  # fmt: skip
        assert hits(inv, cid) == [], cid
    bad = samba(
        {**GOOD_GLOBALS, "map to guest": "Bad User", "server min protocol": "SMB2_02"},
        {
            EL: {
                "path": "/srv/elections/" + EL,
                "guest ok": "Yes",
                "server smb encrypt": "desired",
            },
            "partage": {"path": "/srv/partage"},
        },
    )
    inv = shares_inv(policies, samba=bad)
    assert [h.resource for h in hits(inv, "samba_guest_ok")] == [f"smb:{EL}"]
    assert len(hits(inv, "samba_map_to_guest")) == 1
    assert len(hits(inv, "samba_min_protocol")) == 1
    assert [h.resource for h in hits(inv, "samba_encryption_off")] == [f"smb:{EL}"]
    assert [h.resource for h in hits(inv, "samba_share_undeclared")] == ["smb:partage"]


def test_stray_personal_data(policies) -> None:  # type: ignore[no-untyped-def]
    world = StrayFile(b"/tmp/export.csv", 0o100644, 90_000, PII)
    private = StrayFile(b"/home/dmodele/contacts.xlsx", 0o100600, 9_000, PII)
    found = {h.resource: h for h in hits(shares_inv(policies, stray=[world, private]),
                                           "stray_personal_data")}  # fmt: skip
    assert found["/tmp/export.csv"].severity == Severity.CRITICAL
    assert found["/home/dmodele/contacts.xlsx"].severity == Severity.HIGH


# ------------------------------------------------------------------ identity


def id_inv(policies, **kw: object) -> Inventory:  # type: ignore[no-untyped-def]
    ident = IdentityInventory(iam_fetched=True)
    for k, v in kw.items():
        setattr(ident, k, v)
    return Inventory(policies=policies, now=NOW, identity=ident)


GOOD_PP = {
    "MinimumPasswordLength": 14,
    "RequireLowercaseCharacters": True,
    "RequireUppercaseCharacters": True,
    "RequireNumbers": True,
    "RequireSymbols": False,
    "PasswordReusePrevention": 24,
}


def test_identity_checks_and_twins(policies) -> None:  # type: ignore[no-untyped-def]
    old = NOW - timedelta(days=200)
    fresh = NOW - timedelta(days=10)
    users = [
        IamUser("cfictive", "arn:aws:iam::1:user/cfictive", True, 1,
                (AccessKey("AKIAFRESH", "Active", fresh),)),
        IamUser("dmodele", "arn:aws:iam::1:user/dmodele", True, 0,
                (AccessKey("AKIAOLD", "Active", old), AccessKey("AKIAOFF", "Inactive", old))),
        IamUser("ancien", "arn:aws:iam::1:user/ancien", False, 0),
        IamUser("isoloir-agent", "arn:aws:iam::1:user/isoloir-agent", False, 0),
    ]  # fmt: skip
    host = [
        HostUser("cfictive", ("el-" + EL,), "/home/cfictive", True),
        HostUser("dmodele", ("el-" + EL,), "/home/dmodele", False),
        HostUser("ptest", ("el-" + EL,), "/home/ptest", True),  # a person, not a member
        HostUser("intrus", ("el-" + EL,), "/home/intrus", True),
    ]
    inv = id_inv(policies, iam_users=users, host_users=host, password_policy=GOOD_PP)
    assert [h.resource for h in hits(inv, "iam_user_no_mfa")] == ["arn:aws:iam::1:user/dmodele"]
    assert [h.resource for h in hits(inv, "iam_access_key_age")] == [
        "arn:aws:iam::1:user/dmodele/access-key/AKIAOLD"
    ]
    assert hits(inv, "iam_password_policy") == []
    assert [h.resource for h in hits(inv, "host_user_no_totp")] == ["host-user:dmodele"]
    assert sorted(h.resource for h in hits(inv, "account_not_in_policies")) == [
        "arn:aws:iam::1:user/ancien",
        "host-user:intrus",
        f"host-user:ptest/el-{EL}",
    ]
    weak = id_inv(policies, password_policy={**GOOD_PP, "MinimumPasswordLength": 8,
                                              "RequireUppercaseCharacters": False})  # fmt: skip
    (hit,) = hits(weak, "iam_password_policy")
    assert len(hit.evidence["weaknesses"]) == 2
    assert len(hits(id_inv(policies, password_policy=None), "iam_password_policy")) == 1


def test_findings_carry_no_personal_data(policies) -> None:  # type: ignore[no-untyped-def]
    e = Entry(BASE + b"/liste.csv", "file", 0o100644, 0, 5001, pii=PII)
    results = registry.run(shares_inv(policies, tree([e])), scopes=["shares"], observed_at=NOW)
    text = "\n".join(r.finding.to_json() for r in results)
    assert "@" not in text
    assert (
        results[0].finding.fingerprint
        == registry.run(shares_inv(policies, tree([e])), scopes=["shares"])[0].finding.fingerprint
    )
    assert date(2027, 5, 21) == policies.election(EL).retention_due
