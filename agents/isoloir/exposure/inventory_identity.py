"""Fetch the identity inventory: IAM users, their MFA and keys, the account
password policy (boto3), and the host users of the election groups with their
TOTP enrolment (~/.google_authenticator, the PAM module's secret file).

Host accounts are read from group and passwd files (default /etc/group and
/etc/passwd; tests pass their own) so a user with an election group as primary
group counts as a member too. Each user carries its uid and shell so the checks
can tell a service account (system uid, no-login shell) from a person.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from isoloir import aws
from isoloir.exposure.model import AccessKey, HostUser, IamUser, IdentityInventory
from isoloir.policy.model import Policies

TOTP_FILE = ".google_authenticator"


def _err(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def fetch_iam(inv: IdentityInventory, region: str | None = None) -> None:
    iam: Any = aws.client("iam", region)
    try:
        users = [u for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]
    except (ClientError, BotoCoreError) as exc:
        inv.errors["iam:ListUsers"] = _err(exc)
        return
    for u in users:
        name = str(u["UserName"])
        try:
            iam.get_login_profile(UserName=name)
            console = True
        except ClientError as exc:
            if _err(exc) != "NoSuchEntity":
                inv.errors[f"iam:GetLoginProfile:{name}"] = _err(exc)
            console = False
        try:
            mfa = len(iam.list_mfa_devices(UserName=name)["MFADevices"])
            keys = tuple(
                AccessKey(str(k["AccessKeyId"]), str(k["Status"]), k["CreateDate"])
                for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
            )
        except (ClientError, BotoCoreError) as exc:
            inv.errors[f"iam:{name}"] = _err(exc)
            continue
        inv.iam_users.append(IamUser(name, str(u["Arn"]), console, mfa, keys))
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


def read_host_users(groups: set[str], *, group_file: Path, passwd_file: Path) -> list[HostUser]:
    """Users belonging (as member or primary group) to one of `groups`."""
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
        enrolled = bool(home) and os.path.lexists(os.path.join(home, TOTP_FILE))
        uid, shell = accounts.get(user, (None, ""))
        out.append(HostUser(user, tuple(sorted(user_groups)), home, enrolled, uid, shell))
    return out


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
        fetch_iam(inv, region)
    groups = {e.share_group for e in policies.elections}
    try:
        inv.host_users = read_host_users(groups, group_file=group_file, passwd_file=passwd_file)
    except OSError as exc:
        inv.errors["host_users"] = type(exc).__name__
    return inv
