"""The exposure agent against real parts: every S3 and IAM misconfiguration
seeded on the emulator (moto server over TLS) next to a correct twin, a temp
share tree with a real smb.conf resolved by `testparm`, and the `isoloir scan`
command with its exit codes and fixes.

Bucket and user names carry a random tag so the shared emulator is not
disturbed; account-wide settings (public access block, password policy) are
saved first and restored after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from isoloir import aws
from isoloir.exposure import scan
from isoloir.exposure.inventory_s3 import control_client
from isoloir.exposure.model import ALL_USERS
from isoloir.exposure.remediate import Journal
from isoloir.policy import load_policies

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TAG = uuid.uuid4().hex[:8]
SLUG = "mouvement-exemple"  # the example baseline's organisation slug
DECL = f"{SLUG}-exp-{TAG}-decl"  # declared by the first election, configured right
AUTRE = f"{SLUG}-exp-{TAG}-autre"  # declared by the second election, misconfigured
ACL = f"{SLUG}-exp-{TAG}-acl"
POL = f"{SLUG}-exp-{TAG}-pol"
US = f"{SLUG}-exp-{TAG}-us"
MINE = (DECL, AUTRE, ACL, POL, US)
GHOST = f"exp{TAG}-ancien"
CONTACTS = "prenom;nom;email;telephone;adresse\n" + "".join(
    f"P{i};N{i};p{i}@example.org;06 00 00 {i // 100:02d} {i % 100:02d};"
    f"{i + 1} rue des Lilas, 99000 Exempleville\n"
    for i in range(40)
)
PAB_ON = dict.fromkeys(
    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
)
TLS = {
    "Sid": "DenyInsecureTransport",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::{b}", "arn:aws:s3:::{b}/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def _code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example policies, with tagged buckets, temp shares and rounds ahead of today."""
    base = tmp_path_factory.mktemp("exposure-policies")
    pdir = base / "policies"
    shutil.copytree(ROOT / "policies", pdir)
    baseline = pdir / "baseline.yml"
    shares = base / "shares"
    baseline.write_text(
        baseline.read_text().replace("share_root: /srv/elections", f"share_root: {shares}")
    )
    src = (pdir / "elections" / "exempleville-2027.yml").read_text()
    first = date.today() + timedelta(days=60)
    rounds = f"rounds: [{first.isoformat()}, {(first + timedelta(days=7)).isoformat()}]"
    for eid, bucket in (("exempleville-2027", DECL), ("autreville-2027", AUTRE)):
        text = src.replace("id: exempleville-2027", f"id: {eid}")
        text = text.replace("rounds: [2027-03-14, 2027-03-21]", rounds)
        text += f"bucket: {bucket}\nshare: {shares / eid}\n"
        (pdir / "elections" / f"{eid}.yml").write_text(text)
    return pdir


@pytest.fixture(scope="module")
def policies(policy_dir: Path):  # type: ignore[no-untyped-def]
    return load_policies(policy_dir)


@pytest.fixture(scope="module")
def account_settings(emulator: Any) -> Iterator[None]:
    """Save the account-wide settings, clear them for the test, restore them after."""
    ctl, iam = control_client(), aws.client("iam")
    account = aws.client("sts").get_caller_identity()["Account"]
    try:
        pab = ctl.get_public_access_block(AccountId=account)["PublicAccessBlockConfiguration"]
    except ClientError:
        pab = None
    try:
        pp = iam.get_account_password_policy()["PasswordPolicy"]
    except ClientError:
        pp = None
    if pab is not None:
        ctl.delete_public_access_block(AccountId=account)
    iam.update_account_password_policy(MinimumPasswordLength=8, RequireNumbers=True)
    yield
    if pab is None:
        try:
            ctl.delete_public_access_block(AccountId=account)
        except ClientError:
            pass
    else:
        ctl.put_public_access_block(AccountId=account, PublicAccessBlockConfiguration=pab)
    if pp is None:
        iam.delete_account_password_policy()
    else:
        # ExpirePasswords is derived; an age or reuse count of 0 means "unset"
        # and the API only accepts 1 or more for them.
        keep = {
            k: v
            for k, v in pp.items()
            if k != "ExpirePasswords"
            and not (k in {"MaxPasswordAge", "PasswordReusePrevention"} and not v)
        }
        iam.update_account_password_policy(**keep)


def _iban(n: int) -> str:
    bban = f"{n:023d}"
    digits = "".join(str(int(c, 36)) for c in bban + "FR00")
    return f"FR{98 - int(digits) % 97:02d}{bban}"


def _xlsx_with_ibans() -> bytes:
    """A spreadsheet whose shared strings hold (fake, valid-checksum) IBANs, padded with a
    large media member so the strings sit far from the end: read through ranged GETs."""
    import io
    import zipfile

    strings = "".join(f"<si><t>Donateur {i}</t></si><si><t>{_iban(i)}</t></si>" for i in range(50))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/sharedStrings.xml", f"<sst>{strings}</sst>")
        zf.writestr("xl/media/logo.bin", os.urandom(300_000), zipfile.ZIP_STORED)
    return buf.getvalue()


def _make(name: str, region: str = "eu-west-3") -> Any:
    s3 = aws.client("s3", region)
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    return s3


@pytest.fixture(scope="module")
def seeded(emulator: Any, policies: Any, account_settings: None) -> None:
    kms = aws.client("kms")
    due = policies.election("exempleville-2027").retention_due
    expiry = datetime.combine(due, time(0), tzinfo=UTC)

    # the correct twin: nothing to report
    s3 = _make(DECL)
    key = kms.create_key(Description="exempleville")["KeyMetadata"]["Arn"]
    s3.put_bucket_encryption(
        Bucket=DECL,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key,
                    }
                }
            ]  # fmt: skip
        },
    )
    s3.put_bucket_versioning(Bucket=DECL, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=DECL, Key="prospects/contacts.csv", Body=CONTACTS.encode())
    s3.put_public_access_block(Bucket=DECL, PublicAccessBlockConfiguration=PAB_ON)
    s3.put_bucket_ownership_controls(
        Bucket=DECL, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    restricted = {
        "Sid": "ReadFromCampaignOffice",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{DECL}/*",
        "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
    }
    tls = json.loads(json.dumps(TLS).replace("{b}", DECL))
    s3.put_bucket_policy(
        Bucket=DECL, Policy=json.dumps({"Version": "2012-10-17", "Statement": [tls, restricted]})
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=DECL,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": f"retention:{prefix}",
                    "Status": "Enabled",
                    "Filter": {"Prefix": prefix},
                    "Expiration": {"Date": expiry + timedelta(days=14)},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                }
                for prefix in ("porte-a-porte/", "prospects/")
            ]
        },  # fmt: skip
    )

    # declared, but its key is scheduled for deletion before retention, and no lifecycle
    s3 = _make(AUTRE)
    meta2 = kms.create_key(Description="autreville")["KeyMetadata"]
    key2 = meta2["Arn"]
    s3.put_bucket_encryption(
        Bucket=AUTRE,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key2,
                    }
                }
            ]  # fmt: skip
        },
    )
    kms.schedule_key_deletion(KeyId=meta2["KeyId"], PendingWindowInDays=7)

    # public through ACLs (bucket and one object); a private object next to it
    s3 = _make(ACL)
    s3.put_bucket_ownership_controls(
        Bucket=ACL, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
    )
    s3.put_bucket_acl(Bucket=ACL, ACL="public-read")
    s3.put_object(Bucket=ACL, Key="export/contacts.csv", Body=CONTACTS.encode(), ACL="public-read")
    s3.put_object(Bucket=ACL, Key="export/private.csv", Body=CONTACTS.encode(), ACL="private")

    # public through the bucket policy
    s3 = _make(POL)
    s3.put_bucket_ownership_controls(
        Bucket=POL, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    open_stmt = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{POL}/*",
    }
    s3.put_bucket_policy(Bucket=POL, Policy=json.dumps({"Statement": [open_stmt]}))
    s3.put_object(Bucket=POL, Key="fichier.csv", Body=CONTACTS.encode())
    s3.put_object(Bucket=POL, Key="dons/virements.xlsx", Body=_xlsx_with_ibans())

    _make(US, "us-east-1")

    # IAM: a console user without MFA and an old active key, not a person of the policies;
    # a twin person with MFA and only an inactive key.
    iam = aws.client("iam")
    iam.create_user(UserName=GHOST)
    iam.create_login_profile(UserName=GHOST, Password="Xy-" + uuid.uuid4().hex)
    iam.create_access_key(UserName=GHOST)
    try:
        iam.create_user(UserName="cfictive")
        iam.create_login_profile(UserName="cfictive", Password="Xy-" + uuid.uuid4().hex)
        dev = iam.create_virtual_mfa_device(VirtualMFADeviceName=f"cfictive-{TAG}")
        iam.enable_mfa_device(
            UserName="cfictive",
            SerialNumber=dev["VirtualMFADevice"]["SerialNumber"],
            AuthenticationCode1="123456",
            AuthenticationCode2="654321",
        )
        kid = iam.create_access_key(UserName="cfictive")["AccessKey"]["AccessKeyId"]
        iam.update_access_key(UserName="cfictive", AccessKeyId=kid, Status="Inactive")
    except ClientError as exc:
        if _code(exc) != "EntityAlreadyExists":
            raise


def _by_resource(findings: list[Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in findings:
        out.setdefault(f.resource, set()).add(f.rule_id)
    return out


def test_s3_misconfigurations_found_and_twin_clean(seeded: None, policies: Any) -> None:
    now = datetime.now(UTC)
    report = scan.run(policies, now, scan.ScanOptions(s3=True, shares=False, identity=False,
                                                       buckets=MINE))  # fmt: skip
    assert not report.fatal
    found = _by_resource(report.findings)
    assert f"s3://{DECL}" not in found  # Principal "*" restricted by aws:SourceIp: not public
    assert f"s3://{DECL}/prospects/contacts.csv" not in found
    assert found[f"s3://{ACL}"] == {
        "s3_bucket_public_acl", "s3_bucket_public_access_block", "s3_bucket_acls_enabled",
        "s3_bucket_encryption", "s3_bucket_versioning", "s3_bucket_tls_only",
        "s3_bucket_undeclared", "s3_bucket_undeclared_no_expiration",  # no lifecycle at all
    }  # fmt: skip
    assert found[f"s3://{ACL}/export/contacts.csv"] == {"s3_object_public_acl"}
    assert f"s3://{ACL}/export/private.csv" not in found
    assert "s3_bucket_policy_public" in found[f"s3://{POL}"]
    assert "s3_bucket_acls_enabled" not in found[f"s3://{POL}"]
    assert "s3_bucket_region" in found[f"s3://{US}"]
    assert {"s3_kms_key_pending_deletion", "s3_bucket_lifecycle_retention"} <= found[
        f"s3://{AUTRE}"
    ]
    assert "s3_bucket_undeclared" not in found[f"s3://{AUTRE}"]
    assert any(r.startswith("aws-account:") for r in found)  # account public access block

    crit = {f.resource: f for f in report.findings if f.severity.name == "CRITICAL"}
    for resource in (f"s3://{ACL}/export/contacts.csv", f"s3://{POL}"):
        f = crit[resource]
        assert "72 hours" in f.message
        draft = f.evidence["breach_register_draft"]
        assert set(draft["data_categories"]) >= {"email addresses", "phone numbers"}
        assert "@example.org" not in f.to_json()
    pol_draft = crit[f"s3://{POL}"].evidence["breach_register_draft"]
    assert "bank account numbers (IBAN)" in pol_draft["data_categories"]  # xlsx, ranged reads
    assert pol_draft["inform_data_subjects"] is True


def test_daemon_jobs_dry_run(seeded: None, policies: Any, tmp_path: Path) -> None:
    from isoloir.exposure.jobs import identity_job, scan_job
    from isoloir.jobs import JobContext, resolve

    assert resolve("scan") is scan_job and resolve("identity") is identity_job
    ctx = JobContext(policies, tmp_path / "state", datetime.now(UTC), dry_run=True)
    found = {(f.rule_id, f.resource) for f in scan_job(ctx)}
    assert ("s3_bucket_public_acl", f"s3://{ACL}") in found
    assert ("s3_object_public_acl", f"s3://{ACL}/export/contacts.csv") in found
    s3 = aws.client("s3")
    assert any(
        g["Grantee"].get("URI") == ALL_USERS for g in s3.get_bucket_acl(Bucket=ACL)["Grants"]
    )
    ids = {f.rule_id for f in identity_job(ctx)}
    assert {"iam_user_no_mfa", "iam_password_policy"} <= ids


def test_identity_misconfigurations_found_and_twin_clean(
    seeded: None, policies: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = tmp_path / "group"
    passwd = tmp_path / "passwd"
    homes = tmp_path / "home"
    for user in ("cfictive", "dmodele", "intrus"):
        (homes / user).mkdir(parents=True)
    # the root-written TOTP status the users role keeps (PAM's secrets are root-only)
    (tmp_path / "totp-status").mkdir()
    (tmp_path / "totp-status" / "cfictive").write_text("state=enrolled\n")
    monkeypatch.setenv("ISOLOIR_TOTP_STATUS_DIR", str(tmp_path / "totp-status"))
    group.write_text("el-exempleville-2027:x:3001:cfictive,dmodele\nautre:x:3002:intrus\n")
    passwd.write_text(
        "".join(
            f"{u}:x:{uid}:{gid}::{homes / u}:/bin/bash\n"
            for u, uid, gid in (
                ("cfictive", 2001, 100),
                ("dmodele", 2002, 100),
                ("intrus", 2003, 3001),
            )  # fmt: skip
        )
    )
    later = datetime.now(UTC) + timedelta(days=120)  # the keys made today are then too old
    report = scan.run(
        policies,
        later,
        scan.ScanOptions(
            s3=False, shares=False, identity=True, group_file=group, passwd_file=passwd
        ),  # fmt: skip
    )
    assert not report.fatal
    found = _by_resource(report.findings)
    ghost = next(r for r in found if r.endswith(f":user/{GHOST}"))
    assert found[ghost] == {"iam_user_no_mfa", "account_not_in_policies"}
    assert any(r.startswith(ghost + "/access-key/") for r in found)
    assert not any(r.endswith(":user/cfictive") or ":user/cfictive/" in r for r in found)
    assert found["aws-account:password-policy"] == {"iam_password_policy"}
    assert found["host-user:dmodele"] == {"host_user_no_totp"}
    assert "host-user:cfictive" not in found
    assert found["host-user:intrus"] == {"account_not_in_policies", "host_user_no_totp"}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "isoloir.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def test_cli_s3_dry_run_then_fix(seeded: None, policy_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    common = ["scan", "--s3", "--config", str(policy_dir), "--state-dir", str(state)]
    common += [x for b in MINE for x in ("--bucket", b)]
    dry = _cli(*common, "--dry-run", "--format", "json")
    assert dry.returncode == 1, dry.stderr
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    actions = {(a["rule_id"], a["resource"]) for a in lines if a.get("type") == "action"}
    assert ("s3_object_public_acl", f"s3://{ACL}/export/contacts.csv") in actions
    assert ("s3_bucket_policy_public", f"s3://{POL}") in actions
    assert not state.exists()
    s3 = aws.client("s3")
    assert any(
        g["Grantee"].get("URI") == ALL_USERS for g in s3.get_bucket_acl(Bucket=ACL)["Grants"]
    )
    for f in (x for x in lines if "rule_id" in x and "fingerprint" in x and x.get("type") is None):
        assert len(f["fingerprint"]) == 32

    fixed = _cli(*common, "--fix", "--format", "json")
    assert fixed.returncode == 1, fixed.stderr  # encryption, versioning... are not auto-fixed
    pab = s3.get_public_access_block(Bucket=ACL)["PublicAccessBlockConfiguration"]
    assert pab == PAB_ON
    assert not any(
        g["Grantee"].get("URI") == ALL_USERS for g in s3.get_bucket_acl(Bucket=ACL)["Grants"]
    )
    obj = s3.get_object_acl(Bucket=ACL, Key="export/contacts.csv")
    assert not any(g["Grantee"].get("URI") == ALL_USERS for g in obj["Grants"])
    with pytest.raises(ClientError) as err:
        s3.get_bucket_policy(Bucket=POL)
    assert _code(err.value) == "NoSuchBucketPolicy"
    assert s3.get_object(Bucket=POL, Key="fichier.csv")["ContentLength"] > 0  # data kept
    journal = Journal(state)
    saved = [e for e in journal.entries() if e["resource"] == f"s3://{POL}"]
    journal.close()
    previous = json.loads(next(e["previous"] for e in saved if e["action"] == "put_bucket_policy"))
    assert previous["Statement"][0]["Sid"] == "PublicRead"

    again = _cli(*common, "--format", "json", "--fail-on", "critical")
    rules = {json.loads(x)["rule_id"] for x in again.stdout.splitlines()}
    assert again.returncode == 0, again.stdout
    assert not rules & {"s3_bucket_public_acl", "s3_object_public_acl", "s3_bucket_policy_public",
                        "s3_account_public_access_block"}  # fmt: skip


SMB_BAD = """[global]
   map to guest = Bad User
   server min protocol = NT1
   server smb encrypt = desired
[exempleville-2027]
   path = {share}
   public = yes
[partage]
   path = /srv/partage
"""
SMB_GOOD = """[global]
   map to guest = Never
   server min protocol = SMB3
   server smb encrypt = required
[exempleville-2027]
   path = {share}
   valid users = @el-exempleville-2027
   guest ok = no
"""


def _share_tree(root: Path, *, good: bool) -> None:
    (root / "prospects").mkdir(parents=True)
    for d in (root, root / "prospects"):
        os.chmod(d, 0o2770)
        subprocess.run(["setfacl", "-d", "-m", "o::---", str(d)], check=True)
    f = root / "prospects" / "liste.csv"
    f.write_text(CONTACTS)
    os.chmod(f, 0o640 if good else 0o644)
    if not good:
        (root / "prospects" / "lien").symlink_to("/etc")
        os.chmod(root / "prospects", 0o775)
        (root / "sans-acl").mkdir(mode=0o2770)
        subprocess.run(["setfacl", "-k", str(root / "sans-acl")], check=True)  # inherited: drop


def test_cli_shares_with_testparm_bad_then_twin(policy_dir: Path, tmp_path: Path) -> None:
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "export-contacts.csv").write_text(CONTACTS)
    bad_root = tmp_path / "bad"
    _share_tree(bad_root / "exempleville-2027", good=False)
    (bad_root / "autreville-2027").mkdir(mode=0o2770)
    bad_conf = tmp_path / "bad-smb.conf"
    bad_conf.write_text(SMB_BAD.format(share=bad_root / "exempleville-2027"))
    args = ["scan", "--shares", "--config", str(policy_dir), "--format", "json",
            "--state-dir", str(tmp_path / "state")]  # fmt: skip
    bad = _cli(*args, "--share-root", str(bad_root), "--smb-conf", str(bad_conf),
               "--stray-path", str(stray))  # fmt: skip
    assert bad.returncode == 1, bad.stderr
    found = _by_resource([_Row(json.loads(x)) for x in bad.stdout.splitlines()])
    share = bad_root / "exempleville-2027"
    assert found[str(share / "prospects" / "liste.csv")] == {"share_world_accessible"}
    assert found[str(share / "prospects")] == {"share_world_accessible", "share_setgid_missing"}
    assert found[str(share / "prospects" / "lien")] == {"share_symlink_escape"}
    assert found[str(share / "sans-acl")] == {"share_default_acl_missing"}
    assert found["smb:exempleville-2027"] == {"samba_guest_ok", "samba_encryption_off"}
    assert found["smb:partage"] >= {"samba_share_undeclared"}
    assert found["smb:[global]"] == {"samba_map_to_guest", "samba_min_protocol"}
    assert found[str(stray / "export-contacts.csv")] == {"stray_personal_data"}
    assert str(share) not in found or found[str(share)] <= {"share_unencrypted_filesystem"}
    leak = next(
        json.loads(x) for x in bad.stdout.splitlines()
        if json.loads(x)["resource"] == str(share / "prospects" / "liste.csv")
    )  # fmt: skip
    assert leak["severity"] == "critical" and "72 hours" in leak["message"]
    assert "@example.org" not in bad.stdout and "06 00 00" not in bad.stdout

    fixed = _cli(*args, "--share-root", str(bad_root), "--smb-conf", str(bad_conf),
                 "--stray-path", str(stray), "--fix")  # fmt: skip
    assert fixed.returncode == 1
    assert oct((share / "prospects" / "liste.csv").stat().st_mode & 0o777) == "0o640"
    assert oct((share / "prospects").stat().st_mode & 0o777) == "0o770"
    assert (Path("/etc") / "passwd").stat().st_mode & 0o004  # the symlink's target untouched

    good_root = tmp_path / "good"
    _share_tree(good_root / "exempleville-2027", good=True)
    _share_tree(good_root / "autreville-2027", good=True)
    good_conf = tmp_path / "good-smb.conf"
    good_conf.write_text(SMB_GOOD.format(share=good_root / "exempleville-2027"))
    empty = tmp_path / "nothing-stray"
    empty.mkdir()
    twin = _cli(*args, "--share-root", str(good_root), "--smb-conf", str(good_conf),
                "--stray-path", str(empty), "--fail-on", "low")  # fmt: skip
    rules = {json.loads(x)["rule_id"] for x in twin.stdout.splitlines()}
    assert rules <= {"share_unencrypted_filesystem"}, twin.stdout
    expected = 1 if rules else 0
    assert twin.returncode == expected
    strict = _cli(*args, "--share-root", str(good_root), "--smb-conf", str(good_conf),
                  "--stray-path", str(empty), "--fail-on", "high")  # fmt: skip
    assert strict.returncode == 0, strict.stdout


class _Row:
    def __init__(self, d: dict[str, Any]) -> None:
        self.resource = d["resource"]
        self.rule_id = d["rule_id"]


def test_cli_exit_2_on_unreadable_policies(tmp_path: Path) -> None:
    res = _cli("scan", "--shares", "--config", str(tmp_path / "missing.json"))
    assert res.returncode == 2
