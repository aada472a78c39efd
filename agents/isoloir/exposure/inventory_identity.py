"""Fetch the identity inventory: IAM users, their MFA and keys, when their console
password was last set (the credential report), the account password policy
(boto3), the host users of the election groups with their
TOTP enrolment, and the host's guard of the instance metadata service.

TOTP: PAM reads each person's secret in /var/lib/isoloir-totp/<user> (root
0700, the hardening role). The agents cannot look there; the users role and the
enrolment scripts keep a root-written status per person in
/var/lib/isoloir-totp-status/<user> (root:<agents' group> 0640, lines
`state=enrolled|pending|none`, and for a pending enrolment `since=` and
`expires=` in epoch seconds). No status file: the state is unknown.

Host accounts are read from group and passwd files (default /etc/group and
/etc/passwd; tests pass their own) so a user with an election group as primary
group counts as a member too. Each user carries its uid and shell so the checks
can tell a service account (system uid, no-login shell) from a person.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import aws
from isoloir.exposure.model import (
    AccessKey,
    HostUser,
    IamUser,
    IdentityInventory,
    MetadataGuard,
    TotpStatus,
)
from isoloir.i18n import N_
from isoloir.policy.model import Policies

TOTP_STATUS_DIR = Path("/var/lib/isoloir-totp-status")
TOTP_STATUS_ENV = "ISOLOIR_TOTP_STATUS_DIR"  # tests and non-default layouts
TOTP_STATES = frozenset({"enrolled", "pending", "none"})
STATUS_MAX_BYTES = 4096
# The hardening role's root timer writes `nft -j list ruleset` here (the agents
# cannot read the ruleset themselves: netlink needs CAP_NET_ADMIN).
NFT_SNAPSHOT = Path("/run/isoloir-nft/ruleset.json")
NFT_SNAPSHOT_ENV = "ISOLOIR_NFT_SNAPSHOT"
NFT_SNAPSHOT_MAX_BYTES = 8 * 1024 * 1024
# EC2 says who it is in the DMI tables (Nitro) or the Xen hypervisor uuid.
DMI_VENDOR = Path("/sys/class/dmi/id/sys_vendor")
XEN_UUID = Path("/sys/hypervisor/uuid")


# When a console password was last set. IAM documents GetLoginProfile's
# CreateDate only as "the date when the password for the user was created" and
# says nothing of a later change (ChangePassword, UpdateLoginProfile); the
# credential report's `password_last_changed` is documented as "the date and
# time when the user's password was last set" (IAM User Guide, "Generate
# credential reports for your AWS account"). So the age comes from the report;
# CreateDate only bounds it (a password is never older than its profile).
# IAM serves a report up to 4 hours old, and makes a new one only on request
# (docs/infra.md, "Administrators' passwords").
REPORT_TRIES = 10
REPORT_WAIT_SECONDS = 3.0
REPORT_MAX_BYTES = 16 * 1024 * 1024  # about 300 bytes a user


def _err(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def _report_date(value: str) -> datetime | None:
    """An ISO 8601 date of the credential report; None for N/A, not_supported, no_information."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReportRow:
    """One IAM user's line of the credential report: console password (and when
    it was last set), MFA, and whether either access-key slot is in use."""

    console: bool
    last_set: datetime | None
    mfa: bool
    keys: bool


def parse_report_rows(content: bytes) -> dict[str, ReportRow]:
    """IAM user name -> its line of the credential report (the root account left out)."""
    text = content[:REPORT_MAX_BYTES].decode("utf-8", errors="replace")
    out: dict[str, ReportRow] = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = row.get("user") or ""
        if not name or name == "<root_account>":
            continue
        enabled = (row.get("password_enabled") or "").lower() == "true"
        out[name] = ReportRow(
            console=enabled,
            last_set=_report_date(row.get("password_last_changed") or "") if enabled else None,
            mfa=(row.get("mfa_active") or "").lower() == "true",
            # a key slot in use, active or not (its date is the key's creation)
            keys=any(
                _report_date(row.get(f"access_key_{n}_last_rotated") or "") is not None
                or (row.get(f"access_key_{n}_active") or "").lower() == "true"
                for n in (1, 2)
            ),
        )
    return out


def parse_credential_report(content: bytes) -> dict[str, datetime | None]:
    """IAM user name -> when its password was last set (None: no password)."""
    return {name: row.last_set for name, row in parse_report_rows(content).items()}


def fetch_credential_report(
    iam: Any, inv: IdentityInventory, *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, ReportRow] | None:
    """Ask IAM for the credential report (a new one when the last is over 4 hours
    old) and read it; None, with the error recorded, when it cannot be had."""
    for attempt in range(REPORT_TRIES):
        try:
            state = iam.generate_credential_report().get("State")
            if state == "COMPLETE":
                got = iam.get_credential_report()
                inv.credential_report_time = got.get("GeneratedTime")
                return parse_report_rows(bytes(got["Content"]))
        except ClientError as exc:
            if _err(exc) not in ("ReportInProgress", "ReportNotPresent", "ReportExpired"):
                inv.errors["iam:GetCredentialReport"] = _err(exc)
                return None
        except (BotoCoreError, KeyError, TypeError) as exc:
            inv.errors["iam:GetCredentialReport"] = type(exc).__name__
            return None
        if attempt + 1 < REPORT_TRIES:
            sleep(REPORT_WAIT_SECONDS)
    inv.errors["iam:GetCredentialReport"] = "ReportInProgress"
    return None


def _last_set(reported: datetime | None, profile_created: datetime | None) -> datetime | None:
    """The report's date, or the login profile's creation when later (a profile
    deleted and created again since the report): a password is never older than
    its profile. None when the report does not know the user (created since)."""
    if reported is None or profile_created is None:
        return reported
    return max(reported, profile_created)


def virtual_mfa_users(iam: Any, inv: IdentityInventory) -> frozenset[str] | None:
    """The users holding an assigned virtual MFA device now (one paginated call for
    the whole account); None, with the error recorded, when it cannot be listed."""
    try:
        return frozenset(
            str(d["User"]["UserName"])
            for page in iam.get_paginator("list_virtual_mfa_devices").paginate(
                AssignmentStatus="Assigned"
            )
            for d in page.get("VirtualMFADevices", [])
            if isinstance(d.get("User"), dict) and d["User"].get("UserName")
        )
    except (ClientError, BotoCoreError) as exc:
        inv.errors["iam:ListVirtualMFADevices"] = _err(exc)
        return None


def _user_from_calls(
    iam: Any, inv: IdentityInventory, u: dict[str, Any], reported: datetime | None
) -> IamUser | None:
    """One user read call by call (a user the credential report does not cover)."""
    name = str(u["UserName"])
    profile_created: datetime | None = None
    try:
        profile = iam.get_login_profile(UserName=name)["LoginProfile"]
        profile_created = profile.get("CreateDate")
        console = True
    except ClientError as exc:
        if _err(exc) != "NoSuchEntity":
            inv.errors[f"iam:GetLoginProfile:{name}"] = _err(exc)
        console = False
    last_set = _last_set(reported, profile_created) if console else None
    try:
        mfa = len(iam.list_mfa_devices(UserName=name)["MFADevices"])
        keys = _access_keys(iam, name)
    except (ClientError, BotoCoreError) as exc:
        inv.errors[f"iam:{name}"] = _err(exc)
        return None
    return IamUser(name, str(u["Arn"]), console, mfa, keys, last_set)


def _access_keys(iam: Any, name: str) -> tuple[AccessKey, ...]:
    return tuple(
        AccessKey(str(k["AccessKeyId"]), str(k["Status"]), k["CreateDate"])
        for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    )


def _user_from_report(
    iam: Any, inv: IdentityInventory, u: dict[str, Any], row: ReportRow, virtual: frozenset[str]
) -> IamUser | None:
    """One user from its report line, with calls only where the report cannot
    say enough: the access keys' ids (when a slot is in use), and an MFA the
    report saw that is not a virtual device (a security key, or a virtual one
    removed since the report)."""
    name = str(u["UserName"])
    try:
        if name in virtual:
            mfa = 1
        elif row.mfa:
            mfa = len(iam.list_mfa_devices(UserName=name)["MFADevices"])
        else:
            mfa = 0
        keys = _access_keys(iam, name) if row.keys else ()
    except (ClientError, BotoCoreError) as exc:
        inv.errors[f"iam:{name}"] = _err(exc)
        return None
    return IamUser(name, str(u["Arn"]), row.console, mfa, keys, row.last_set)


def fetch_iam(
    inv: IdentityInventory, region: str | None = None, *, password_ages: bool = False
) -> None:
    """The IAM users, their console passwords, MFA and access keys, and the
    account's password policy.

    At a national party's size (3,000 people) three calls per user took minutes
    (issue 21), so the credential report, one document for the whole account,
    says who has a console password, MFA and access keys; the virtual MFA
    devices are listed once (the report may be up to 4 hours old, and a person
    who has just enrolled must not stay reported). Calls per user remain only
    for what the report cannot say (access keys' ids, a non-virtual MFA) and for
    the users it does not know (created since it was generated). Without the
    report, every user is read call by call as before. `password_ages`: keep
    when each console password was last set (passwords.admin_max_age_days is on);
    a report that cannot be had then makes that audit incomplete.
    """
    iam: Any = aws.client("iam", region)
    try:
        users = [u for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]
    except (ClientError, BotoCoreError) as exc:
        inv.errors["iam:ListUsers"] = _err(exc)
        return
    report: dict[str, ReportRow] | None = None
    virtual: frozenset[str] | None = None
    if users:
        scratch = IdentityInventory()
        report = fetch_credential_report(iam, scratch)
        inv.credential_report_time = scratch.credential_report_time
        if password_ages:
            inv.errors.update(scratch.errors)
        virtual = virtual_mfa_users(iam, scratch) if report is not None else None
    generated = inv.credential_report_time
    for u in users:
        name = str(u["UserName"])
        row = report.get(name) if report is not None else None
        created = u.get("CreateDate")
        covered = (
            row is not None
            and virtual is not None
            and (generated is None or created is None or created <= generated)
        )
        if covered:
            assert row is not None and virtual is not None
            user = _user_from_report(iam, inv, u, row, virtual)
        else:
            user = _user_from_calls(iam, inv, u, row.last_set if row is not None else None)
        if user is None:
            continue
        if not password_ages:
            user = dataclasses.replace(user, password_last_changed=None)
        inv.iam_users.append(user)
    try:
        inv.password_policy = dict(iam.get_account_password_policy()["PasswordPolicy"])
    except ClientError as exc:
        if _err(exc) != "NoSuchEntity":
            inv.errors["iam:GetAccountPasswordPolicy"] = _err(exc)
            return
        inv.password_policy = None
    except BotoCoreError as exc:
        inv.errors["iam:GetAccountPasswordPolicy"] = _err(exc)
        return
    inv.iam_fetched = True


def read_host_users(
    groups: set[str],
    *,
    group_file: Path,
    passwd_file: Path,
    totp_status_dir: Path = TOTP_STATUS_DIR,
) -> list[HostUser]:
    """Users belonging (as member or primary group) to one of `groups`, with their TOTP status."""
    gid_to_group: dict[int, str] = {}
    member_of: dict[str, set[str]] = {}
    for line in group_file.read_text(errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) < 4 or parts[0] not in groups:
            continue
        try:
            gid_to_group[int(parts[2])] = parts[0]
        except ValueError:
            continue
        for user in filter(None, parts[3].split(",")):
            member_of.setdefault(user.strip(), set()).add(parts[0])
    homes: dict[str, str] = {}
    accounts: dict[str, tuple[int | None, str]] = {}  # user -> (uid, shell)
    for line in passwd_file.read_text(errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) < 7:
            continue
        homes[parts[0]] = parts[5]
        try:
            uid: int | None = int(parts[2])
        except ValueError:
            uid = None
        accounts[parts[0]] = (uid, parts[6].strip())
        try:
            primary = gid_to_group.get(int(parts[3]))
        except ValueError:
            primary = None
        if primary is not None:
            member_of.setdefault(parts[0], set()).add(primary)
    out = []
    for user, user_groups in sorted(member_of.items()):
        home = homes.get(user, "")
        totp = read_totp_status(totp_status_dir, user)
        uid, shell = accounts.get(user, (None, ""))
        out.append(
            HostUser(
                user,
                tuple(sorted(user_groups)),
                home,
                totp.state == "enrolled",
                uid,
                shell,
                totp=totp,
            )
        )
    return out


def _epoch(value: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def parse_totp_status(text: str) -> TotpStatus:
    """`state=...`, `since=...`, `expires=...` lines; anything else: unknown."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    state = fields.get("state", "")
    if state not in TOTP_STATES:
        return TotpStatus("unknown", problem=N_("unreadable status"))
    if state != "pending":
        return TotpStatus(state)
    since, expires = _epoch(fields.get("since", "")), _epoch(fields.get("expires", ""))
    if since is None or expires is None:
        return TotpStatus("unknown", problem=N_("pending without its window"))
    return TotpStatus("pending", since=since, expires=expires)


def read_totp_status(directory: Path, user: str) -> TotpStatus:
    """The root-written TOTP status of `user` (never a file of the user's own)."""
    if "/" in user or user in {"", ".", ".."}:
        return TotpStatus("unknown", problem=N_("invalid user name"))
    try:
        fd = os.open(directory / user, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return TotpStatus("unknown", problem=f"no status in {directory}")
    except OSError as exc:
        return TotpStatus("unknown", problem=f"status unreadable ({type(exc).__name__})")
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if st.st_uid not in {0, os.geteuid()}:  # root, or the agents themselves (tests)
            return TotpStatus("unknown", problem=N_("status not written by root"))
        data = handle.read(STATUS_MAX_BYTES)
    return parse_totp_status(data.decode("ascii", errors="replace"))


def totp_status_dir() -> Path:
    return Path(os.environ.get(TOTP_STATUS_ENV) or TOTP_STATUS_DIR)


# ------------------------------------------------------------ metadata service


def on_ec2(dmi_vendor: Path = DMI_VENDOR, xen_uuid: Path = XEN_UUID) -> bool:
    """True on an EC2 instance (DMI vendor, or a Xen uuid starting with ec2)."""

    def head(path: Path) -> str:
        try:
            return path.read_text(errors="replace")[:256].strip()
        except OSError:
            return ""

    return head(dmi_vendor) == "Amazon EC2" or head(xen_uuid).lower().startswith("ec2")


def read_metadata_guard(
    snapshot: Path | None = None, *, on_aws: bool | None = None, now: float | None = None
) -> MetadataGuard:
    """The host's nftables ruleset as the root timer last wrote it, and whether it is EC2."""
    path = snapshot or Path(os.environ.get(NFT_SNAPSHOT_ENV) or NFT_SNAPSHOT)
    guard = MetadataGuard(
        on_aws=on_ec2() if on_aws is None else on_aws, agent_uid=os.geteuid(), snapshot=str(path)
    )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return guard
    except OSError as exc:
        guard.error = type(exc).__name__
        return guard
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if st.st_uid not in {0, os.geteuid()}:
            guard.error = N_("snapshot not written by root")
            return guard
        data = handle.read(NFT_SNAPSHOT_MAX_BYTES + 1)
    if len(data) > NFT_SNAPSHOT_MAX_BYTES:
        guard.error = N_("snapshot too large")
        return guard
    try:
        ruleset = json.loads(data)
    except ValueError:
        guard.error = N_("snapshot is not JSON")
        return guard
    guard.ruleset = ruleset if isinstance(ruleset, dict) else None
    guard.age_seconds = max(0.0, (time.time() if now is None else now) - st.st_mtime)
    return guard


def fetch(
    policies: Policies,
    *,
    iam: bool = True,
    group_file: Path = Path("/etc/group"),
    passwd_file: Path = Path("/etc/passwd"),
    region: str | None = None,
) -> IdentityInventory:
    inv = IdentityInventory()
    if iam:
        fetch_iam(inv, region, password_ages=policies.baseline.passwords.admin_max_age_days > 0)
    groups = {e.share_group for e in policies.elections}
    try:
        inv.host_users = read_host_users(
            groups,
            group_file=group_file,
            passwd_file=passwd_file,
            totp_status_dir=totp_status_dir(),
        )
    except OSError as exc:
        inv.errors["host_users"] = type(exc).__name__
    inv.metadata = read_metadata_guard()
    return inv
