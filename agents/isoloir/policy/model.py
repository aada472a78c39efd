"""Typed policies: what every part of Isoloir reads.

Built only by `isoloir.policy.loader` from the YAML files (or from the rendered
agent config, which holds the same normalised data). Frozen: nothing changes a
policy after it was validated.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import PurePosixPath

from isoloir.policy.durations import Duration

# Alphabet sizes used for the CNIL entropy computation (deliberation 2022-100):
# lower 26, upper 26, digits 10, specials 37. For `min_classes` we take the
# weakest alphabet a user may choose with that many classes.
_WEAKEST_ALPHABET = {1: 10, 2: 36, 3: 62, 4: 99}
PROFILE_BITS = {"password_only": 80, "with_lockout": 50}
PASSPHRASE_BITS_PER_WORD = 11.5  # a diceware-like list of ~2,900 words


@dataclass(frozen=True)
class Organisation:
    party: str
    slug: str
    controller_name: str
    controller_address: str
    representative: str
    rights_contact: str
    dpo_contact: str
    unsubscribe: str
    # Appended to the default bucket names: S3 names are global, and
    # `<slug>-<election id>` is easy to predict and to take first (docs/aws.md).
    bucket_suffix: str = ""


@dataclass(frozen=True)
class Regions:
    default: str
    allowed: tuple[str, ...]


@dataclass(frozen=True)
class PasswordRules:
    profile: str  # password_only | with_lockout
    min_length: int
    min_classes: int
    passphrase_words: int
    dictionary_check: bool
    reuse_prevention: int
    max_age_days: int  # 0: no forced change
    # administrators' console password: reported by the identity audit past this
    # age (0: off); IAM's own expiry (max_age_days) is account-wide
    admin_max_age_days: int = 0

    @property
    def target_bits(self) -> int:
        return PROFILE_BITS[self.profile]

    @property
    def entropy_bits(self) -> float:
        """Entropy of the weakest password the rules accept."""
        return self.min_length * math.log2(_WEAKEST_ALPHABET[self.min_classes])

    @property
    def passphrase_bits(self) -> float:
        return self.passphrase_words * PASSPHRASE_BITS_PER_WORD


@dataclass(frozen=True)
class Lockout:
    attempts: int
    window_seconds: int
    unlock_seconds: int


@dataclass(frozen=True)
class Mfa:
    required: bool
    method: str


@dataclass(frozen=True)
class RetentionRules:
    max_after_last_round: Duration
    warn_days: tuple[int, ...]
    kms_deletion_window_days: int
    contacts_path: str
    contacts_columns: tuple[str, ...]
    # how often what is kept after the campaigns (the contacts store, permanent
    # datasets) must be reviewed by the DPO (compliance review E7)
    permanent_review: Duration = Duration(years=1)


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    email: str
    admin: bool
    ssh_keys: tuple[str, ...]


@dataclass(frozen=True)
class EmailChannel:
    host: str
    port: int
    security: str  # starttls | tls
    sender: str
    credentials_file: str


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    template: str  # generic | slack | mattermost | teams
    secret_file: str


@dataclass(frozen=True)
class Route:
    recipients: tuple[str, ...]  # person ids
    channels: tuple[str, ...]  # "email" or "webhook:<name>"
    min_severity: str
    elections: tuple[str, ...]  # election ids, or ("*",)

    def matches(self, election: str | None) -> bool:
        return "*" in self.elections or (election is not None and election in self.elections)


@dataclass(frozen=True)
class Alerts:
    language: str  # fr | en
    min_severity: str
    renotify_hours: int
    flood_max_alerts: int
    flood_window_minutes: int
    digest_enabled: bool
    digest_time: str
    email: EmailChannel | None
    webhooks: tuple[Webhook, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class Schedules:
    scan_interval_minutes: int
    identity_time: str  # HH:MM, host local time
    retention_time: str
    jitter_seconds: int


@dataclass(frozen=True)
class Hosts:
    share_root: str
    admin_networks: tuple[str, ...]
    stray_data_paths: tuple[str, ...]
    # TARGET=aws: region -> Debian 12 AMI id / private subnet id of the file-share host
    image_ids: Mapping[str, str] = field(default_factory=dict, hash=False)
    subnet_ids: Mapping[str, str] = field(default_factory=dict, hash=False)
    # Who encrypts the share root at rest: "host" (dm-crypt, the default) or
    # "cloud" (the aws target's EBS data volume, mounted on share_root).
    at_rest: str = "host"


@dataclass(frozen=True)
class Identity:
    max_access_key_age_days: int


@dataclass(frozen=True)
class Remediation:
    s3_public_access_block: bool
    s3_public_grants: bool
    share_permissions: bool
    share_group_ownership: bool


@dataclass(frozen=True)
class Upstream:
    """The party's smarthost the mail guard's relay hands accepted mail to."""

    host: str
    port: int = 587


@dataclass(frozen=True)
class Mail:
    """The campaign mail guard (docs/mailguard.md). `party_domains` and `language`
    are filled by the loader (people's and organisation's domains, alerts.language)."""

    enabled: bool = True
    max_visible_recipients: int = 5
    transparency: str = "reject"  # reject | add
    language: str = "fr"  # fr | en
    party_domains: tuple[str, ...] = ()
    upstream: Upstream | None = None
    unsubscribe_confirm: bool = True


def address_domain(address: str) -> str:
    """The lower-cased domain of an e-mail address ('' when there is none)."""
    return address.rpartition("@")[2].strip().rstrip(".").lower() if "@" in address else ""


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


@dataclass(frozen=True)
class CallWindow:
    days: tuple[str, ...]  # of WEEKDAYS
    start: str  # HH:MM, the called person's local time
    end: str  # HH:MM, after start


# By analogy with décret 2022-1313 (commercial prospecting by phone).
DEFAULT_CALL_WINDOWS = (
    CallWindow(WEEKDAYS[:5], "10:00", "13:00"),
    CallWindow(WEEKDAYS[:5], "14:00", "20:00"),
)


@dataclass(frozen=True)
class PhoneBanking:
    windows: tuple[CallWindow, ...] = DEFAULT_CALL_WINDOWS
    public_holidays: bool = False  # calls allowed on public holidays


@dataclass(frozen=True)
class Baseline:
    organisation: Organisation
    regions: Regions
    passwords: PasswordRules
    lockout: Lockout
    mfa: Mfa
    retention: RetentionRules
    people: tuple[Person, ...]
    alerts: Alerts
    schedules: Schedules
    hosts: Hosts
    identity: Identity
    remediation: Remediation
    # The account's IAM groups quota (AWS's default 300, adjustable in Service Quotas)
    iam_groups_quota: int = 300
    # TARGET=aws: the IAM roles (or users) that run the deploy, and the emergency
    # roles. They may list the election buckets and manage their settings, never
    # touch their objects. An IAM Identity Center role may end in
    # AWSReservedSSO_<permission set>_* (its suffix changes on re-provisioning).
    deployer_principals: tuple[str, ...] = ()
    break_glass_roles: tuple[str, ...] = ()
    mail: Mail = field(default_factory=Mail)
    phone_banking: PhoneBanking = field(default_factory=PhoneBanking)

    @property
    def derived_party_domains(self) -> tuple[str, ...]:
        """The domains of the people's and the organisation's addresses, sorted."""
        org = self.organisation
        addresses = [p.email for p in self.people]
        addresses += [org.rights_contact, org.dpo_contact, org.unsubscribe]
        return tuple(sorted({d for d in map(address_domain, addresses) if d}))

    @property
    def party_domains(self) -> tuple[str, ...]:
        """mail.party_domains, or the derived ones when the policies name none."""
        return self.mail.party_domains or self.derived_party_domains

    @property
    def admins(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.admin)

    def person(self, person_id: str) -> Person:
        for p in self.people:
            if p.id == person_id:
                return p
        raise KeyError(person_id)

    @property
    def log_bucket_name(self) -> str:
        """The access-log bucket of the default region (the others add a suffix)."""
        suffix = self.organisation.bucket_suffix
        return f"{self.organisation.slug}-access-logs" + (f"-{suffix}" if suffix else "")

    @property
    def log_bucket_names(self) -> dict[str, str]:
        """Every allowed region's access-log bucket, as Terraform names them
        (infra/modules/region: `<name>` in the default region, `<name>-<region>` elsewhere)."""
        base = self.log_bucket_name
        return {
            region: base if region == self.regions.default else f"{base}-{region}"
            for region in self.regions.allowed
        }


@dataclass(frozen=True)
class ColumnRule:
    column: str
    accepted: tuple[str, ...]

    def matches(self, value: str | None) -> bool:
        """Explicit values only: anything not listed (blank included) is a no."""
        if value is None:
            return False
        wanted = value.strip().casefold()
        return any(wanted == a.strip().casefold() for a in self.accepted)


@dataclass(frozen=True)
class Tabular:
    consent: ColumnRule | None
    opt_out: ColumnRule | None
    email_column: str | None
    phone_column: str | None
    # a postal or door-to-door opt-out's identity: name and address (normalised, hashed)
    name_columns: tuple[str, ...] = ()
    address_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    name: str
    bucket_prefix: str  # e.g. "prospects/"
    share_path: str  # relative to the election's share, e.g. "prospects"
    origin: str
    legal_basis: str
    category: str  # campaign | permanent
    tabular: Tabular | None
    # RGPD art. 9(2) exception for the opinions it reveals: explicit_consent |
    # members_regular_contacts | none_no_opinion_data ("" when not declared)
    art9_condition: str = ""
    # a campaign dataset without an opt-out column: why it holds none ("" when not declared)
    no_opt_outs: str = ""
    # a permanent dataset's review period (None: the baseline's retention.permanent_review)
    review: Duration | None = None

    @property
    def campaign_specific(self) -> bool:
        return self.category == "campaign"


@dataclass(frozen=True)
class Election:
    id: str
    label: str
    kind: str
    scope: str
    region: str
    rounds: tuple[date, ...]
    retention_after: Duration | None
    retention_date: date | None
    legal_hold: bool
    legal_hold_reason: str
    members: tuple[str, ...]
    datasets: tuple[Dataset, ...]
    bucket_name: str
    share_path: str  # absolute path of the share on the host
    source: str  # the policy file it came from

    @property
    def last_round(self) -> date:
        return max(self.rounds)

    @property
    def retention_due(self) -> date:
        """The day the campaign datasets must be destroyed."""
        if self.retention_date is not None:
            return self.retention_date
        assert self.retention_after is not None  # guaranteed by the loader
        return self.retention_after.after(self.last_round)

    @property
    def share_group(self) -> str:
        return f"el-{self.id}"

    def dataset(self, name: str) -> Dataset:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(name)

    def share_dir(self, dataset: Dataset) -> PurePosixPath:
        return PurePosixPath(self.share_path) / dataset.share_path

    def days_left(self, today: date) -> int:
        return (self.retention_due - today).days


@dataclass(frozen=True)
class Policies:
    baseline: Baseline
    elections: tuple[Election, ...]
    # Elections of the policies that another file-share host serves (its region's
    # host): this host neither holds their shares nor purges or scans their
    # buckets (`served_by`). Empty when the host serves every election.
    elsewhere: tuple[Election, ...] = ()
    # Whether this host audits what belongs to the whole account (IAM users, the
    # password policy, the account's public access block, buckets no election
    # declares): one host does, so that N hosts do not raise N alerts of each
    # (issue 21). True where there is no host file (the controller, the local
    # target, a host converged before the flag).
    audits_account: bool = True

    def served_by(self, election_ids: Collection[str] | None) -> Policies:
        """The policies as one host sees them: `elections` keeps those it serves
        (None: all of them), the others move to `elsewhere`. An id that no
        election has is ignored (the host was converged before a policy change)."""
        if election_ids is None:
            return self
        wanted = set(election_ids)
        every = self.elections + self.elsewhere
        return replace(
            self,
            elections=tuple(e for e in every if e.id in wanted),
            elsewhere=tuple(e for e in every if e.id not in wanted),
        )

    def election(self, election_id: str) -> Election:
        for e in self.elections:
            if e.id == election_id:
                return e
        raise KeyError(election_id)

    @property
    def bucket_names(self) -> dict[str, str]:
        """Bucket name -> election id."""
        return {e.bucket_name: e.id for e in self.elections}
