"""The inventories the checks read: fetched once, then only read.

An inventory is plain data. `inventory_s3`, `inventory_shares` and
`inventory_identity` fill it (they make every API call and system call);
checks never touch the network or the file system. Tests build inventories
directly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from isoloir.exposure.pii import PiiReport
from isoloir.policy.model import Policies

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
PUBLIC_GRANTEES = frozenset({ALL_USERS, AUTHENTICATED_USERS})
PAB_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def display_path(path: bytes | str) -> str:
    """A path as printable text: bytes that are not UTF-8 shown as \\xNN escapes."""
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    return raw.decode("utf-8", errors="backslashreplace")


# ---------------------------------------------------------------- S3


@dataclass(frozen=True)
class Grant:
    grantee: str  # group URI, canonical id or email
    permission: str

    @property
    def public(self) -> bool:
        return self.grantee in PUBLIC_GRANTEES


@dataclass(frozen=True)
class ObjectSample:
    key: str
    size: int
    pii: PiiReport | None


@dataclass
class Bucket:
    name: str
    region: str = ""
    acl: tuple[Grant, ...] = ()
    policy: Mapping[str, Any] | None = None
    public_access_block: Mapping[str, bool] | None = None  # None: not configured
    ownership: str | None = None  # None: no ownership controls (ACLs enabled)
    encryption: tuple[Mapping[str, Any], ...] = ()  # ApplyServerSideEncryptionByDefault dicts
    versioning: str | None = None  # Enabled | Suspended | None
    lifecycle: tuple[Mapping[str, Any], ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    kms_key_state: str | None = None  # KeyState of the default-encryption key
    kms_deletion_date: datetime | None = None
    object_acls: Mapping[str, tuple[Grant, ...]] = field(default_factory=dict)  # key -> grants
    objects_listed: bool = False
    objects_truncated: bool = False
    public_samples: tuple[ObjectSample, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)  # API operation -> error code
    logging_target: str | None = None  # server access logs: target bucket (None: off)
    logging_prefix: str = ""
    # breach evidence from the access logs: object key ("" = any key) -> evidence dict
    read_evidence: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def acls_enabled(self) -> bool:
        return self.ownership != "BucketOwnerEnforced"


@dataclass(frozen=True)
class KmsKey:
    """A KMS key of the account (see inventory_kms)."""

    key_id: str
    arn: str
    region: str
    manager: str  # CUSTOMER | AWS
    spec: str  # SYMMETRIC_DEFAULT, RSA_2048, HMAC_256...
    state: str  # Enabled | Disabled | PendingDeletion...
    origin: str = "AWS_KMS"  # AWS_KMS | EXTERNAL | AWS_CLOUDHSM...
    rotation: bool | None = None  # None: not read (or not applicable)
    deletion_date: datetime | None = None


@dataclass(frozen=True)
class AccessPoint:
    name: str
    region: str
    bucket: str
    public_access_block: Mapping[str, bool] | None  # None: not read


@dataclass
class S3Inventory:
    account_id: str = ""
    account_public_access_block: Mapping[str, bool] | None = None
    buckets: list[Bucket] = field(default_factory=list)
    kms_keys: list[KmsKey] = field(default_factory=list)
    kms_read: bool = False  # the key listing succeeded (else no KMS check reports)
    access_points: list[AccessPoint] = field(default_factory=list)
    access_points_read: bool = False
    # key ARNs/ids the retention agent scheduled for deletion (its journal); None: unread
    retention_scheduled_keys: frozenset[str] | None = None
    errors: dict[str, str] = field(default_factory=dict)  # bucket or operation -> error
    api_calls: int = 0
    unanswered: bool = False  # AWS did not answer the first call: nothing else was asked
    # buckets listed but not read: their elections are served by another host (N4)
    buckets_elsewhere: list[str] = field(default_factory=list)

    @property
    def account_pab_unread(self) -> bool:
        """The account's public access block was not read (no account id, or an error)."""
        return "sts" in self.errors or "account_public_access_block" in self.errors


# ---------------------------------------------------------------- shares


@dataclass(frozen=True)
class Entry:
    """One file-system entry that deviates from a share's baseline."""

    path: bytes  # absolute, raw bytes (names need not be UTF-8)
    kind: str  # file | dir | link | other
    mode: int
    uid: int
    gid: int
    size: int = 0
    has_default_acl: bool | None = None  # directories only
    link_target: bytes | None = None  # symlinks only, as read (never followed)
    pii: PiiReport | None = None
    dev: int = 0  # st_dev and st_ino as scanned: a fix acts only on this very inode
    ino: int = 0

    @property
    def display(self) -> str:
        return display_path(self.path)


@dataclass(frozen=True)
class ShareTarget:
    """What a host fix acts on: an entry of a share, reached from the share root.

    `path` is absolute and starts with `root`; the fix re-opens it component by
    component from the root's descriptor (never through a symlink) and acts only
    when the inode it reaches is the scanned one (`dev`, `ino`).
    """

    root: bytes
    path: bytes
    dev: int
    ino: int


@dataclass
class ShareTree:
    election: str | None
    root: bytes
    group: str  # the election's Unix group
    gid: int | None  # None when the group does not exist on the host
    other_election_gids: Mapping[int, str] = field(default_factory=dict)  # gid -> election id
    entries: list[Entry] = field(default_factory=list)
    scanned_entries: int = 0
    unreadable: list[bytes] = field(default_factory=list)  # dirs the scan could not open
    missing: bool = False  # the root could not be walked at all (see `problem`)
    problem: str = ""  # why: "does not exist", "is not a directory", ...
    mount_point: str = ""
    fs_type: str = ""
    device: str = ""
    encrypted: bool | None = None  # None: unknown (heuristic could not tell)
    ebs_volume: str = ""  # hosts.at_rest cloud: the EBS volume id of the device, if EBS
    platform_encrypted: bool = False  # the share root is the EBS data volume's mount


@dataclass(frozen=True)
class SambaShare:
    name: str
    params: Mapping[str, str]  # lower-case names, as testparm resolves them


@dataclass
class SambaConfig:
    path: str
    globals: Mapping[str, str] = field(default_factory=dict)
    shares: tuple[SambaShare, ...] = ()

    def effective(self, share: SambaShare, name: str, default: str = "") -> str:
        return share.params.get(name, self.globals.get(name, default))


@dataclass(frozen=True)
class StrayFile:
    path: bytes
    mode: int
    size: int
    pii: PiiReport

    @property
    def display(self) -> str:
        return display_path(self.path)


@dataclass
class SharesInventory:
    trees: list[ShareTree] = field(default_factory=list)
    samba: SambaConfig | None = None
    stray: list[StrayFile] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    stray_unread: list[bytes] = field(default_factory=list)  # stray paths not (fully) read
    # Breach evidence of each world-readable share file (path -> evidence fields):
    # reads by other accounts in Samba's full_audit log (exposure/sharelog.py).
    read_evidence: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    audit_log: str | None = None  # smb.conf `log level` ... `full_audit:N@FILE`


# ---------------------------------------------------------------- identity


@dataclass(frozen=True)
class AccessKey:
    key_id: str
    status: str
    created: datetime


@dataclass(frozen=True)
class IamUser:
    name: str
    arn: str
    console_access: bool
    mfa_devices: int
    access_keys: tuple[AccessKey, ...] = ()
    # When the console password was last set: the credential report's
    # password_last_changed (None: no password, or not read).
    password_last_changed: datetime | None = None


# A host account is a service account, not a person, when both hold: a system uid
# (Debian's SYS_UID_MAX, below the first uid `adduser` gives a person) and a shell
# that refuses every login. A person's account (uid >= 1000) counts as a person
# even with a no-login shell: Samba needs no shell to serve the share.
SYSTEM_UID_MAX = 999
NOLOGIN_SHELLS = frozenset(
    {"/usr/sbin/nologin", "/sbin/nologin", "/usr/bin/nologin", "/bin/false", "/usr/bin/false"}
)


@dataclass(frozen=True)
class TotpStatus:
    """A person's TOTP enrolment as root recorded it (/var/lib/isoloir-totp-status)."""

    state: str  # enrolled | pending | none | unknown
    since: datetime | None = None  # pending: when the enrolment window opened
    expires: datetime | None = None  # pending: when it closes
    problem: str = ""  # unknown: why


@dataclass(frozen=True)
class HostUser:
    name: str
    groups: tuple[str, ...]  # election groups the user belongs to
    home: str
    totp_enrolled: bool
    uid: int | None = None  # None: not in the passwd file
    shell: str = ""
    totp: TotpStatus | None = None  # None: only `totp_enrolled` is known

    @property
    def totp_status(self) -> TotpStatus:
        if self.totp is not None:
            return self.totp
        return TotpStatus("enrolled" if self.totp_enrolled else "none")

    @property
    def service_account(self) -> bool:
        """A system account that cannot log in (e.g. the agents' own `isoloir`)."""
        return (
            self.uid is not None and 0 < self.uid <= SYSTEM_UID_MAX and self.shell in NOLOGIN_SHELLS
        )


@dataclass
class IdentityInventory:
    iam_users: list[IamUser] = field(default_factory=list)
    password_policy: Mapping[str, Any] | None = None  # None: no account password policy
    host_users: list[HostUser] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    iam_fetched: bool = False
    metadata: MetadataGuard | None = None  # None: not read
    # GeneratedTime of the credential report the password dates come from (IAM
    # serves one up to 4 hours old); None: not read
    credential_report_time: datetime | None = None


@dataclass
class MetadataGuard:
    """What the host says about who may reach the instance metadata service."""

    on_aws: bool = False  # an EC2 instance (DMI / Xen uuid)
    agent_uid: int | None = None  # the agents' own uid (allowed, like root)
    snapshot: str = ""  # path of the root-written `nft -j list ruleset`
    ruleset: Mapping[str, Any] | None = None  # None: no snapshot
    age_seconds: float | None = None
    error: str = ""


# ---------------------------------------------------------------- all


@dataclass
class Inventory:
    policies: Policies
    now: datetime
    s3: S3Inventory | None = None
    shares: SharesInventory | None = None
    identity: IdentityInventory | None = None
    host: str = ""

    @property
    def today(self) -> date:
        return self.now.date()
