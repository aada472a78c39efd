"""The one loader of the policies.

`load_policies(dir)` reads `baseline.yml` and `elections/*.yml`, checks them
against the JSON schemas, then across fields and files, and returns typed
`Policies`. Every problem is collected, so the user sees all of them at once,
each as `file:line: field.path: reason`. `load_rendered(agent.json)` rebuilds
the same `Policies` from the normalised form that `render` writes.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from isoloir.policy import access
from isoloir.policy import model as m
from isoloir.policy.durations import Duration, longer_than
from isoloir.policy.inputs import (
    ReadError,
    control_characters,
    header_key,
    one_line,
    read_text,
)
from isoloir.policy.yamlsrc import MAX_FILE_BYTES, Path_, Source, SourceError, parse

RENDERED_FORMAT = 1

# What is kept after the campaigns is reviewed at least this often (compliance review E7).
MAX_PERMANENT_REVIEW = Duration(years=3)
# The rendered agent.json holds the baseline and every election: a bounded read.
MAX_RENDERED_BYTES = 16_000_000
# One folder name, as a dataset's share_path segment.
SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")
# hosts.share_root may not be, nor lie under, these: the shares are made
# group-writable by the members of each election.
SYSTEM_DIRS = tuple(
    PurePosixPath(d)
    for d in (
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/sys",
        "/usr",
        "/var/lib/isoloir",
    )
)


# AWS's limits the Terraform would hit (IAM User Guide, "IAM and AWS STS quotas",
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html;
# tags: EC2 User Guide, "Tag your Amazon EC2 resources", tag restrictions,
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_Tags.html).
IAM_GROUPS_PER_USER = 10  # not adjustable
IAM_GROUPS_DEFAULT_QUOTA = 300  # per account, adjustable in Service Quotas
TAG_VALUE_MAX = 256  # EC2, S3, KMS and IAM alike
TAG_KEY_MAX = 128
# passwords.admin_max_age_days: 0 (off) or this range; the schema holds the maximum
ADMIN_PASSWORD_AGE_MIN = 30
ADMIN_PASSWORD_AGE_MAX = 730
_IP_LIKE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_BUCKET_CHARS = re.compile(r"[a-z0-9.-]+")


def bucket_name_problem(name: str) -> str | None:
    """The first S3 naming rule `name` breaks (S3 User Guide, "General purpose
    bucket naming rules"), then Isoloir's own (no dots); None when valid."""
    rules = (
        (not 3 <= len(name) <= 63, f"is {len(name)} characters long; S3 allows 3 to 63"),
        (
            not _BUCKET_CHARS.fullmatch(name),
            "may hold only lower-case letters, digits, dots and hyphens (S3 naming rules)",
        ),
        (
            not (name[:1].isalnum() and name[-1:].isalnum()),
            "must begin and end with a letter or digit (S3 naming rules)",
        ),
        (".." in name, "must not contain two adjacent dots (S3 naming rules)"),
        (
            bool(_IP_LIKE.fullmatch(name)),
            "must not be formatted as an IP address (S3 naming rules)",
        ),
        (
            name.startswith(("xn--", "sthree-", "amzn-s3-demo-")),
            "must not start with xn--, sthree- or amzn-s3-demo- (prefixes S3 reserves)",
        ),
        (
            name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")),
            "must not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3 "
            "(suffixes S3 reserves for access points and other bucket types)",
        ),
        (
            "." in name,
            "must not contain dots: HTTPS to a dotted bucket name fails the "
            "certificate check with virtual-hosted addressing (S3 naming rules, "
            "best practices)",
        ),
    )
    return next((reason for broken, reason in rules if broken), None)


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"
        return one_line(text)


class PolicyError(Exception):
    """The policies are not valid; `problems` lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))


# ---------------------------------------------------------------- schemas


@cache
def schema(name: str) -> dict[str, Any]:
    text = resources.files("isoloir.policy").joinpath(f"schema/{name}.schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schema(name))


# A field name longer than this is shown cut: an unknown "key" may be a whole line
# of some other file (CLI review N12: a shadow line in the error of a CI log).
MAX_SHOWN_KEY = 32


def _clip(name: str) -> str:
    return name if len(name) <= MAX_SHOWN_KEY else name[: MAX_SHOWN_KEY - 3] + "..."


def _field(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{_clip(part)}" if text else _clip(str(part))
    return text


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _schema_reason(error: ValidationError) -> tuple[Path_, str]:
    """A readable reason for one schema error, and the field it is about."""
    path: Path_ = tuple(error.absolute_path)
    node: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    hint = node.get("x-hint")
    kind = error.validator
    value = error.instance
    expected: Any = error.validator_value
    if kind == "required":
        present: dict[str, Any] = value if isinstance(value, dict) else {}
        missing = [k for k in expected if k not in present]
        name = missing[0] if missing else "?"
        return (*path, name), "missing required field"
    if kind == "additionalProperties":
        allowed = list(node.get("properties", {}))
        extras = [k for k in value if k not in allowed] if isinstance(value, dict) else []
        name = extras[0] if extras else "?"
        close = difflib.get_close_matches(str(name), allowed, n=1)
        fix = (
            f" (did you mean {close[0]!r}?)" if close else f" (known fields: {', '.join(allowed)})"
        )
        return (*path, name), f"unknown field{fix}"
    if kind == "type":
        reason = f"{_short(value)} is not of type {expected}"
        if expected == "string" and isinstance(value, bool | int | float):
            reason += " (quote it: YAML reads yes, no, on, off and bare numbers as other types)"
        return path, reason
    if kind == "enum":
        options = ", ".join(str(o) for o in expected)
        reason = f"{_short(value)} is not one of: {options}"
        return path, f"{reason} ({hint})" if hint else reason
    if kind == "const":
        return path, hint or f"must be {_short(expected)}"
    if kind in ("pattern", "format"):
        if hint and hint.startswith(("a ", "an ")):
            return path, f"{_short(value)} is not {hint}"
        suffix = f" ({hint})" if hint else ""
        return path, f"{_short(value)} is not valid{suffix}"
    if kind in ("minProperties", "maxProperties") and hint:
        return path, hint
    if kind in ("minimum", "maximum"):
        word = "at least" if kind == "minimum" else "at most"
        return path, f"{_short(value)} must be {word} {expected}"
    if kind in ("minItems", "maxItems"):
        word = "at least" if kind == "minItems" else "at most"
        return path, f"needs {word} {expected} item(s)"
    if kind in ("minLength", "maxLength"):
        word = "at least" if kind == "minLength" else "at most"
        return path, f"must be {word} {expected} character(s) long"
    if kind == "uniqueItems":
        return path, "items must be unique"
    return path, error.message[:200]


def _fill_defaults(data: Any, node: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    """Fill the schema's `default`s into valid data, recursively."""
    if "$ref" in node:
        ref = node["$ref"].split("/")[-1]
        node = {**root["$defs"][ref], **{k: v for k, v in node.items() if k != "$ref"}}
    if isinstance(data, dict) and "properties" in node:
        for key, sub in node["properties"].items():
            if key not in data and "default" in sub:
                data[key] = copy.deepcopy(sub["default"])
            if key in data:
                data[key] = _fill_defaults(data[key], sub, root)
    elif isinstance(data, list) and isinstance(node.get("items"), Mapping):
        return [_fill_defaults(item, node["items"], root) for item in data]
    return data


def _check_schema(name: str, data: Any, src: Source | None, file: str) -> list[Problem]:
    """Control characters anywhere, then the schema (once per field)."""
    problems = []
    flagged = set()
    for path, reason in control_characters(data):
        flagged.add(path)
        problems.append(Problem(file, src.line_of(path) if src else 0, _field(path), reason))
    for error in _validator(name).iter_errors(data):
        path, reason = _schema_reason(error)
        if path in flagged:
            continue
        line = src.line_of(path) if src else 0
        problems.append(Problem(file, line, _field(path), reason))
    return problems


# ------------------------------------------------------------ cross checks


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


class _Collector:
    def __init__(self, file: str, src: Source | None) -> None:
        self.file = file
        self.src = src
        self.problems: list[Problem] = []

    def add(self, path: Path_, reason: str) -> None:
        line = self.src.line_of(path) if self.src else 0
        self.problems.append(Problem(self.file, line, _field(path), reason))


def _check_share_root(b: dict[str, Any], out: _Collector) -> None:
    text = b["hosts"]["share_root"]
    root = PurePosixPath(text)
    if ".." in root.parts:
        out.add(("hosts", "share_root"), "must not contain ..")
    elif root == PurePosixPath("/") or any(d == root or d in root.parents for d in SYSTEM_DIRS):
        out.add(
            ("hosts", "share_root"),
            f"{_short(text)} is a system directory; the election shares need a folder "
            "of their own (e.g. /srv/elections)",
        )


def _check_mail(b: dict[str, Any], out: _Collector) -> None:
    """Explicit party domains must hold the unsubscribe address's domain: the guard
    treats every other domain as outside the party."""
    domains = [d.lower().rstrip(".") for d in b["mail"].get("party_domains", [])]
    own = m.address_domain(b["organisation"]["unsubscribe"])
    if domains and not any(own == d or own.endswith("." + d) for d in domains):
        out.add(
            ("mail", "party_domains"),
            f"does not hold {own!r}, the domain of organisation.unsubscribe: add it",
        )


def _check_principals(b: dict[str, Any], out: _Collector) -> None:
    """The deploying and break-glass principals live in the party's one account:
    a bucket policy's aws:PrincipalArn exception naming another account's role
    would let that account list the buckets."""
    accounts: dict[str, Path_] = {}
    for key in ("deployer_principals", "break_glass_roles"):
        for i, arn in enumerate(b["aws"][key]):
            accounts.setdefault(arn.split(":")[4], ("aws", key, i))
    if len(accounts) > 1:
        first, *others = sorted(accounts)
        for account in others:
            out.add(
                accounts[account],
                f"names account {account}, another names {first}: the deploying and "
                "break-glass principals must be in the party's one account",
            )


LOG_BUCKET_BASE_MAX = 50  # infra/variables.tf log_bucket_name: room for "-eu-central-1"


def _check_call_windows(b: dict[str, Any], out: _Collector) -> None:
    """Each window ends after it starts; two windows of one day do not overlap."""
    seen: dict[str, list[tuple[str, str, int]]] = {}
    for i, w in enumerate(b["phone_banking"]["windows"]):
        where = ("phone_banking", "windows", i)
        if w["to"] <= w["from"]:
            out.add(
                (*where, "to"),
                f"{w['to']} is not after {w['from']}: a window ends after it starts "
                "(the same day; no window crosses midnight)",
            )
            continue
        for day in w["days"]:
            for start, end, j in seen.get(day, []):
                if w["from"] < end and start < w["to"]:
                    out.add(
                        (*where, "from"),
                        f"{w['from']}-{w['to']} overlaps windows[{j}] ({start}-{end}) on {day}",
                    )
            seen.setdefault(day, []).append((w["from"], w["to"], i))


def _check_baseline(b: dict[str, Any], out: _Collector) -> None:
    _check_share_root(b, out)
    _check_call_windows(b, out)
    slug = b["organisation"]["slug"]
    suffix = b["organisation"].get("bucket_suffix")
    base = f"{slug}-access-logs" + (f"-{suffix}" if suffix else "")
    field = ("organisation", "bucket_suffix" if suffix else "slug")
    for name in (base, f"{base}-eu-central-1"):
        reason = bucket_name_problem(name)
        if reason is not None:
            out.add(field, f"names the party's buckets (e.g. {name!r}), and that name {reason}")
            break
    if len(base) > LOG_BUCKET_BASE_MAX:
        out.add(
            field,
            f"names the access-log bucket {base!r} ({len(base)} characters): at most "
            f"{LOG_BUCKET_BASE_MAX}, so that `-<region>` still fits S3's 63",
        )
    _check_principals(b, out)
    aws_hosts = b["hosts"]["aws"]
    for key in ("image_ids", "subnet_ids"):
        for region in aws_hosts[key]:
            if region not in b["regions"]["allowed"]:
                out.add(
                    ("hosts", "aws", key, region),
                    f"{region} is not in regions.allowed; no host is made there",
                )
    regions = b["regions"]
    if regions["default"] not in regions["allowed"]:
        out.add(("regions", "default"), f"{regions['default']!r} is not in regions.allowed")
    pw = b["passwords"]
    rules = m.PasswordRules(
        pw["profile"],
        pw["min_length"],
        pw["min_classes"],
        pw["passphrase_words"],
        pw["dictionary_check"],
        pw["reuse_prevention"],
        pw["max_age_days"],
        pw["admin_max_age_days"],
    )
    if 0 < rules.admin_max_age_days < ADMIN_PASSWORD_AGE_MIN:
        out.add(
            ("passwords", "admin_max_age_days"),
            f"{rules.admin_max_age_days} days is too short a renewal period for "
            f"administrators' passwords (CNIL 2022-100 asks a reasonable one): use 0 (off) "
            f"or {ADMIN_PASSWORD_AGE_MIN} to {ADMIN_PASSWORD_AGE_MAX} days",
        )
    if round(rules.entropy_bits) < rules.target_bits:
        need = next(
            n
            for n in range(rules.min_length, 200)
            if round(
                m.PasswordRules(pw["profile"], n, pw["min_classes"], 1, True, 0, 0).entropy_bits
            )
            >= rules.target_bits
        )
        out.add(
            ("passwords", "min_length"),
            f"{rules.min_length} characters from {rules.min_classes} class(es) give "
            f"{rules.entropy_bits:.0f} bits, below the {rules.target_bits} bits of the "
            f"{rules.profile} profile (CNIL 2022-100); use at least {need} characters",
        )
    if rules.passphrase_bits < rules.target_bits:
        out.add(
            ("passwords", "passphrase_words"),
            f"{rules.passphrase_words} words give about {rules.passphrase_bits:.0f} bits, "
            f"below the {rules.target_bits} bits of the {rules.profile} profile",
        )
    retention = b["retention"]
    max_after = Duration.parse(retention["max_after_last_round"])
    if max_after == Duration():
        out.add(("retention", "max_after_last_round"), "must be longer than zero")
    review = Duration.parse(retention["permanent_review"])
    if review == Duration():
        out.add(("retention", "permanent_review"), "must be longer than zero")
    elif longer_than(review, MAX_PERMANENT_REVIEW):
        out.add(
            ("retention", "permanent_review"),
            f"{review} is longer than {MAX_PERMANENT_REVIEW}: what is kept after the "
            "campaigns must be reviewed at least that often (RGPD art. 5(1)(e))",
        )
    contacts = PurePosixPath(retention["permanent_contacts"]["path"])
    share_root = PurePosixPath(b["hosts"]["share_root"])
    if contacts == share_root or share_root in contacts.parents:
        out.add(
            ("retention", "permanent_contacts", "path"),
            f"{contacts} is inside the election shares ({share_root}); "
            "the permanent contacts must live outside every election",
        )
    for i, net in enumerate(b["hosts"]["admin_networks"]):
        try:
            ipaddress.ip_network(net, strict=True)
        except ValueError:
            out.add(
                ("hosts", "admin_networks", i), f"{_short(net)} is not a network (e.g. 10.0.0.0/24)"
            )
    seen: dict[str, int] = {}
    for i, person in enumerate(b["people"]):
        if person["id"] in seen:
            out.add(
                ("people", i, "id"),
                f"{person['id']!r} is already used by people[{seen[person['id']]}]",
            )
        seen.setdefault(person["id"], i)
    _check_mail(b, out)
    if not any(p["admin"] for p in b["people"]):
        out.add(("people",), "at least one person must be an administrator (admin: true)")
    alerts = b["alerts"]
    webhooks = {w["name"] for w in alerts["webhooks"]}
    for i, route in enumerate(alerts["routes"]):
        for j, who in enumerate(route["recipients"]):
            if who not in seen:
                out.add(("alerts", "routes", i, "recipients", j), f"{who!r} is not in people")
        for j, channel in enumerate(route["channels"]):
            if channel == "email" and "email" not in alerts:
                out.add(
                    ("alerts", "routes", i, "channels", j), "uses email but alerts.email is not set"
                )
            if channel.startswith("webhook:") and channel[8:] not in webhooks:
                out.add(("alerts", "routes", i, "channels", j), f"no webhook named {channel[8:]!r}")
        if "email" in route["channels"] and not route["recipients"]:
            out.add(("alerts", "routes", i, "recipients"), "an email route needs recipients")


def _check_columns(tab: dict[str, Any], where: Path_, out: _Collector) -> None:
    """Column names are compared as the retention agent matches headers
    (case, accents, spaces and punctuation ignored)."""
    names = {
        key: tab[key]["column"] if isinstance(tab[key], dict) else tab[key]
        for key in ("consent", "opt_out", "email_column", "phone_column")
        if key in tab
    }
    for key, name in names.items():
        path = (*where, key, "column") if key in ("consent", "opt_out") else (*where, key)
        if not header_key(name):
            out.add(path, f"{_short(name)} has no letter or digit: no header can match it")
    for columns in ("name_columns", "address_columns"):
        for j, name in enumerate(tab.get(columns, ())):
            if not header_key(name):
                out.add((*where, columns, j), f"{_short(name)} has no letter or digit")
    if "consent" in names and "opt_out" in names:
        if header_key(names["consent"]) == header_key(names["opt_out"]):
            out.add(
                (*where, "opt_out", "column"),
                f"{_short(names['opt_out'])} is the same column as consent "
                f"({_short(names['consent'])}): a row cannot both consent and opt out",
            )


def _check_share(e: dict[str, Any], b: dict[str, Any], out: _Collector) -> None:
    """An election's share is one folder directly under hosts.share_root."""
    root = b["hosts"]["share_root"].rstrip("/")
    share = e["share"]
    name = share[len(root) + 1 :] if share.startswith(root + "/") else ""
    if not SEGMENT.fullmatch(name):
        out.add(
            ("share",),
            f"{_short(share)} must be one folder directly under hosts.share_root "
            f"({root or '/'}), named with letters, digits, '.', '_' or '-' "
            f"(e.g. {root}/{e['id']})",
        )


def _check_bucket(e: dict[str, Any], slug: str, out: _Collector) -> None:
    """S3's naming rules, then the `<slug>-` prefix the agents' role and the
    access-log buckets' policy (aws:SourceArn) are scoped to."""
    explicit = "bucket" in e
    bucket = e["bucket"] if explicit else f"{slug}-{e['id']}"
    where: Path_ = ("bucket",) if explicit else ("id",)
    reason = bucket_name_problem(bucket)
    if reason is not None:
        fix = "" if explicit else "; shorten the id or the organisation slug"
        out.add(where, f"the bucket name {_short(bucket)} {reason}{fix}")
    elif not bucket.startswith(f"{slug}-"):
        out.add(
            where,
            f"the bucket name {_short(bucket)} must start with {slug + '-'!r} "
            "(the organisation slug): the agents' role and the access-log buckets' "
            "policy only reach the party's buckets by that prefix",
        )


def _check_election(
    e: dict[str, Any], b: dict[str, Any] | None, stem: str, out: _Collector
) -> None:
    if e["id"] != stem:
        out.add(("id",), f"{e['id']!r} does not match the file name; rename the file {e['id']}.yml")
    rounds: list[date] = []
    for i, text in enumerate(e["rounds"]):
        parsed = _date(text)
        if parsed is None:
            out.add(("rounds", i), f"{_short(text)} is not a real date")
        else:
            rounds.append(parsed)
    if rounds and rounds != sorted(rounds):
        out.add(("rounds",), "rounds must be in chronological order")
    if len(set(rounds)) != len(rounds):
        out.add(("rounds",), "two rounds on the same day")
    hold = e["legal_hold"]
    if hold["active"] and not hold["reason"].strip():
        out.add(
            ("legal_hold", "reason"), "a legal hold needs a reason (e.g. the court case reference)"
        )
    datasets = e["datasets"]
    names: set[str] = set()
    for i, ds in enumerate(datasets):
        if ds["name"] in names:
            out.add(("datasets", i, "name"), f"{ds['name']!r} is declared twice")
        names.add(ds["name"])
        for j, other in enumerate(datasets[:i]):
            a, c = ds["bucket_prefix"], other["bucket_prefix"]
            if a.startswith(c) or c.startswith(a):
                out.add(
                    ("datasets", i, "bucket_prefix"),
                    f"{a!r} overlaps datasets[{j}] ({c!r}): a purge of one would touch the other",
                )
            pa, pc = PurePosixPath(ds["share_path"]), PurePosixPath(other["share_path"])
            if pa == pc or pa in pc.parents or pc in pa.parents:
                out.add(
                    ("datasets", i, "share_path"),
                    f"{str(pa)!r} overlaps datasets[{j}] ({str(pc)!r})",
                )
        if ".." in PurePosixPath(ds["share_path"]).parts:
            out.add(("datasets", i, "share_path"), "must not contain ..")
        _check_sources(ds, ("datasets", i), out)
        tab = ds.get("tabular")
        if tab:
            _check_columns(tab, ("datasets", i, "tabular"), out)
        _check_opt_outs(ds, ("datasets", i), out)
        _check_review(ds, ("datasets", i), out)
    if b is None:
        return
    known = {p["id"] for p in b["people"]}
    for i, who in enumerate(e["members"]):
        if who not in known:
            out.add(("members", i), f"{who!r} is not in the baseline's people")
    region = e.get("region", b["regions"]["default"])
    if region not in b["regions"]["allowed"]:
        out.add(
            ("region",),
            f"{region!r} is not in the baseline's allowed regions "
            f"({', '.join(b['regions']['allowed'])})",
        )
    _check_bucket(e, b["organisation"]["slug"], out)
    if "share" in e:
        share = PurePosixPath(e["share"])
        if ".." in share.parts:
            out.add(("share",), "must not contain ..")
        else:
            _check_share(e, b, out)
    if rounds:
        last = max(rounds)
        retention = e["retention"]
        due: date | None
        if "after" in retention:
            due = _after(retention["after"], last)
            where: Path_ = ("retention", "after")
            if due is None:
                out.add(where, f"{retention['after']} after {last} goes past the year 9999")
        else:
            due = _date(retention["date"])
            where = ("retention", "date")
            if due is None:
                out.add(where, f"{_short(retention['date'])} is not a real date")
        if due is not None:
            if due <= last:
                out.add(where, f"retention ends {due}, not after the last round ({last})")
            ceiling = _after(b["retention"]["max_after_last_round"], last) or date.max
            if due > ceiling:
                out.add(
                    where,
                    f"retention ends {due}, later than the baseline's maximum "
                    f"({b['retention']['max_after_last_round']} after {last}: {ceiling})",
                )


def _check_review(ds: dict[str, Any], where: Path_, out: _Collector) -> None:
    """A permanent dataset may be reviewed more (or less) often than the baseline says,
    within the same bounds (compliance review E7); a campaign dataset is destroyed instead."""
    if "review" not in ds:
        return
    if ds["category"] != "permanent":
        out.add(
            (*where, "review"),
            "only a permanent dataset is reviewed: a campaign dataset is destroyed at retention",
        )
        return
    review = Duration.parse(ds["review"])
    if review == Duration():
        out.add((*where, "review"), "must be longer than zero")
    elif longer_than(review, MAX_PERMANENT_REVIEW):
        out.add(
            (*where, "review"),
            f"{review} is longer than {MAX_PERMANENT_REVIEW}: what is kept after the "
            "campaigns must be reviewed at least that often (RGPD art. 5(1)(e))",
        )


def _check_opt_outs(ds: dict[str, Any], where: Path_, out: _Collector) -> None:
    """A campaign dataset is destroyed at retention: who unsubscribed must be extracted first
    (by e-mail, phone, or name and address for a postal or door-to-door opt-out), unless the
    dataset is declared to hold no opt-out."""
    tab = ds.get("tabular") or {}
    if ("name_columns" in tab) != ("address_columns" in tab):
        missing = "address_columns" if "name_columns" in tab else "name_columns"
        out.add(
            (*where, "tabular", missing),
            "a postal opt-out is recorded by name and address: declare name_columns and "
            "address_columns together",
        )
    if ds["category"] != "campaign":
        return
    waived = "no_opt_outs" in ds
    if "opt_out" in tab and waived:
        out.add(
            (*where, "no_opt_outs"),
            "the dataset declares an opt_out column: it cannot also hold no opt-out",
        )
    elif "opt_out" not in tab and not waived:
        out.add(
            (*where, "tabular", "opt_out"),
            "a campaign dataset is destroyed at retention and its opt-outs with it: declare "
            "tabular.opt_out (with email_column, phone_column or name_columns and "
            "address_columns) so the purge records who unsubscribed, or no_opt_outs: <why> "
            "when it holds none",
        )
    elif "opt_out" in tab and not any(
        k in tab for k in ("email_column", "phone_column", "name_columns")
    ):
        out.add(
            (*where, "tabular"),
            "an opt_out column needs email_column, phone_column or name_columns and "
            "address_columns to build the suppression list",
        )


# Origins whose every row reveals a political opinion, actual or presumed (review E5, L3).
OPINION_ORIGINS = ("door_to_door", "party_members")


def _check_sources(ds: dict[str, Any], where: Path_, out: _Collector) -> None:
    """What the origin and legal basis allow (review E5; C. élect. L.37/R.16; RGPD art. 6, 9)."""
    if ds["legal_basis"] == "public_interest":
        out.add(
            (*where, "legal_basis"),
            "public_interest (RGPD art. 6(1)(e)) needs a task laid down by law, which no French "
            "law gives a party: use consent or legitimate_interest",
        )
    if ds["origin"] == "electoral_roll":
        if ds["category"] != "campaign":
            out.add(
                (*where, "category"),
                "an electoral-list dataset is destroyed after the election (CNIL): it must be "
                "campaign, never permanent",
            )
        tab = ds.get("tabular") or {}
        for column in ("email_column", "phone_column"):
            if column in tab:
                out.add(
                    (*where, "tabular", column),
                    "the electoral list holds no e-mail or phone (C. élect. R.16): declare the "
                    "contacts people gave you as another dataset (e.g. origin opt_in_form)",
                )
    condition = ds.get("art9_condition")
    if ds["origin"] in OPINION_ORIGINS and not condition:
        out.add(
            (*where, "art9_condition"),
            f"a {ds['origin']} dataset reveals political opinions: declare the RGPD art. 9(2) "
            "condition (explicit_consent, members_regular_contacts or none_no_opinion_data)",
        )
    if ds["origin"] == "party_members" and condition == "none_no_opinion_data":
        out.add(
            (*where, "art9_condition"),
            "membership of a party is itself a political opinion: explicit_consent or "
            "members_regular_contacts",
        )


def _after(duration: str, start: date) -> date | None:
    """`start` + the duration, or None when that is past what a date can hold."""
    try:
        return Duration.parse(duration).after(start)
    except (ValueError, OverflowError):
        return None


# ------------------------------------------------------------------ build


def _build_baseline(b: dict[str, Any]) -> m.Baseline:
    org, pw, lk, ret, al = (
        b["organisation"],
        b["passwords"],
        b["lockout"],
        b["retention"],
        b["alerts"],
    )
    email = al.get("email")
    return m.Baseline(
        organisation=m.Organisation(
            party=org["party"],
            slug=org["slug"],
            controller_name=org["controller"]["name"],
            controller_address=org["controller"]["address"],
            representative=org["controller"]["representative"],
            rights_contact=org["rights_contact"],
            dpo_contact=org["dpo_contact"],
            unsubscribe=org["unsubscribe"],
            bucket_suffix=org.get("bucket_suffix", ""),
        ),
        regions=m.Regions(b["regions"]["default"], tuple(b["regions"]["allowed"])),
        passwords=m.PasswordRules(
            pw["profile"],
            pw["min_length"],
            pw["min_classes"],
            pw["passphrase_words"],
            pw["dictionary_check"],
            pw["reuse_prevention"],
            pw["max_age_days"],
            pw["admin_max_age_days"],
        ),
        lockout=m.Lockout(lk["attempts"], lk["window_seconds"], lk["unlock_seconds"]),
        mfa=m.Mfa(b["mfa"]["required"], b["mfa"]["method"]),
        retention=m.RetentionRules(
            max_after_last_round=Duration.parse(ret["max_after_last_round"]),
            warn_days=tuple(sorted(ret["warn_days"], reverse=True)),
            kms_deletion_window_days=ret["kms_deletion_window_days"],
            contacts_path=ret["permanent_contacts"]["path"],
            contacts_columns=tuple(ret["permanent_contacts"]["columns"]),
            permanent_review=Duration.parse(ret["permanent_review"]),
        ),
        people=tuple(
            m.Person(p["id"], p["name"], p["email"], p["admin"], tuple(p["ssh_keys"]))
            for p in b["people"]
        ),
        alerts=m.Alerts(
            language=al["language"],
            min_severity=al["min_severity"],
            renotify_hours=al["renotify_hours"],
            flood_max_alerts=al["flood"]["max_alerts"],
            flood_window_minutes=al["flood"]["window_minutes"],
            digest_enabled=al["digest"]["enabled"],
            digest_time=al["digest"]["time"],
            email=m.EmailChannel(
                email["host"],
                email["port"],
                email["security"],
                email["from"],
                email["credentials_file"],
            )
            if email
            else None,
            webhooks=tuple(
                m.Webhook(w["name"], w["url"], w["template"], w["secret_file"])
                for w in al["webhooks"]
            ),
            routes=tuple(
                m.Route(
                    tuple(r["recipients"]),
                    tuple(r["channels"]),
                    r["min_severity"],
                    tuple(r["elections"]),
                )
                for r in al["routes"]
            ),
        ),
        phone_banking=m.PhoneBanking(
            windows=tuple(
                m.CallWindow(tuple(w["days"]), w["from"], w["to"])
                for w in b["phone_banking"]["windows"]
            ),
            public_holidays=b["phone_banking"]["public_holidays"],
        ),
        schedules=m.Schedules(**b["schedules"]),
        hosts=m.Hosts(
            b["hosts"]["share_root"],
            tuple(b["hosts"]["admin_networks"]),
            tuple(b["hosts"]["stray_data_paths"]),
            image_ids=dict(sorted(b["hosts"]["aws"]["image_ids"].items())),
            subnet_ids=dict(sorted(b["hosts"]["aws"]["subnet_ids"].items())),
            at_rest=b["hosts"]["at_rest"],
        ),
        identity=m.Identity(**b["identity"]),
        remediation=m.Remediation(**b["remediation"]),
        iam_groups_quota=b["aws"]["iam_groups_quota"],
        deployer_principals=tuple(b["aws"]["deployer_principals"]),
        break_glass_roles=tuple(b["aws"]["break_glass_roles"]),
        mail=_build_mail(b),
    )


def _build_mail(b: dict[str, Any]) -> m.Mail:
    """The `mail` section; language and party_domains default from the rest of the baseline."""
    mail = b["mail"]
    up = mail.get("upstream")
    people = [p["email"] for p in b["people"]]
    org = b["organisation"]
    derived = sorted(
        {
            m.address_domain(a)
            for a in (*people, org["rights_contact"], org["dpo_contact"], org["unsubscribe"])
        }
        - {""}
    )
    domains = mail.get("party_domains") or derived
    return m.Mail(
        enabled=mail["enabled"],
        max_visible_recipients=mail["max_visible_recipients"],
        transparency=mail["transparency"],
        language=mail.get("language") or b["alerts"]["language"],
        party_domains=tuple(d.lower().rstrip(".") for d in domains),
        upstream=m.Upstream(up["host"].lower(), up["port"]) if up else None,
        unsubscribe_confirm=mail["unsubscribe_confirm"],
    )


def _column_rule(raw: Mapping[str, Any] | None) -> m.ColumnRule | None:
    return m.ColumnRule(raw["column"], tuple(raw["accepted"])) if raw else None


def _build_election(e: dict[str, Any], b: m.Baseline, source: str) -> m.Election:
    retention = e["retention"]
    datasets = []
    for ds in e["datasets"]:
        tab = ds.get("tabular")
        datasets.append(
            m.Dataset(
                name=ds["name"],
                bucket_prefix=ds["bucket_prefix"],
                share_path=ds["share_path"],
                origin=ds["origin"],
                legal_basis=ds["legal_basis"],
                category=ds["category"],
                art9_condition=ds.get("art9_condition", ""),
                no_opt_outs=ds.get("no_opt_outs", ""),
                review=Duration.parse(ds["review"]) if "review" in ds else None,
                tabular=m.Tabular(
                    consent=_column_rule(tab.get("consent")),
                    opt_out=_column_rule(tab.get("opt_out")),
                    email_column=tab.get("email_column"),
                    phone_column=tab.get("phone_column"),
                    name_columns=tuple(tab.get("name_columns", ())),
                    address_columns=tuple(tab.get("address_columns", ())),
                )
                if tab is not None
                else None,
            )
        )
    return m.Election(
        id=e["id"],
        label=e["label"],
        kind=e["kind"],
        scope=e["scope"],
        region=e.get("region", b.regions.default),
        rounds=tuple(date.fromisoformat(r) for r in e["rounds"]),
        retention_after=Duration.parse(retention["after"]) if "after" in retention else None,
        retention_date=date.fromisoformat(retention["date"]) if "date" in retention else None,
        legal_hold=e["legal_hold"]["active"],
        legal_hold_reason=e["legal_hold"]["reason"],
        members=tuple(e["members"]),
        datasets=tuple(datasets),
        bucket_name=e.get("bucket") or default_bucket_name(b.organisation, e["id"]),
        share_path=e.get("share") or str(PurePosixPath(b.hosts.share_root) / e["id"]),
        source=source,
    )


def default_bucket_name(org: m.Organisation, election_id: str) -> str:
    """`<slug>-<election id>`, then `-<bucket_suffix>` when the baseline sets one."""
    name = f"{org.slug}-{election_id}"
    return f"{name}-{org.bucket_suffix}" if org.bucket_suffix else name


def _check_across(elections: list[tuple[str, Source | None, m.Election]]) -> list[Problem]:
    problems = []
    ids: dict[str, str] = {}
    buckets: dict[str, str] = {}
    shares: list[tuple[PurePosixPath, str]] = []
    at: dict[PurePosixPath, list[int]] = {}  # share -> indexes in shares
    under: dict[PurePosixPath, list[int]] = {}  # ancestor (or itself) -> shares below it
    for file, src, el in elections:

        def add(path: Path_, reason: str, file: str = file, src: Source | None = src) -> None:
            problems.append(Problem(file, src.line_of(path) if src else 0, _field(path), reason))

        if el.id in ids:
            add(("id",), f"{el.id!r} is already the id of {ids[el.id]}")
        ids.setdefault(el.id, file)
        if el.bucket_name in buckets:
            add(
                ("bucket",),
                f"bucket {el.bucket_name!r} is already used by {buckets[el.bucket_name]}",
            )
        buckets.setdefault(el.bucket_name, file)
        share = PurePosixPath(el.share_path)
        # Earlier shares equal to or above this one, or below it: by path, not
        # pair by pair (577 elections: 166,000 pairs).
        lineage = (share, *share.parents)
        overlapping = {i for anc in lineage for i in at.get(anc, ())}
        overlapping |= set(under.get(share, ()))
        for i in sorted(overlapping):
            other, other_file = shares[i]
            add(
                ("share",) if src and ("share",) in src.lines else ("datasets",),
                f"share {share} overlaps the share of {other_file} ({other}): "
                "each election's files must be segregated",
            )
        at.setdefault(share, []).append(len(shares))
        for anc in lineage:
            under.setdefault(anc, []).append(len(shares))
        shares.append((share, file))
    return problems


# ------------------------------------------------------------------ public


def _outside(path: Path, root: Path) -> bool:
    """Whether `path`, its symbolic links followed, lands outside the policies directory."""
    real_root = Path(os.path.realpath(root))
    return not Path(os.path.realpath(path)).is_relative_to(real_root)


def _read(path: Path, shown: str, root: Path) -> tuple[Source | None, list[Problem]]:
    """The parsed file, or its problems. A symbolic link leading out of the policies
    directory is refused unread: its target's content would be quoted in errors."""
    if _outside(path, root):
        reason = "a symbolic link to a file outside the policies directory (copy the file in)"
        return None, [Problem(shown, 0, "", reason)]
    try:
        text = read_text(path, MAX_FILE_BYTES)
    except ReadError as exc:
        return None, [Problem(shown, exc.line, "", exc.reason)]
    try:
        return parse(text), []
    except SourceError as exc:
        return None, [Problem(shown, exc.line, "", exc.message)]


def _display(path: Path) -> str:
    """The path as the user named it (relative to the working directory when
    under it): a symbolic link is shown by its own name, never its target."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path(os.path.abspath(Path.cwd()))))
    except ValueError:
        return str(path)


def _validate_baseline(
    data: Any, src: Source | None, shown: str
) -> tuple[dict[str, Any] | None, list[Problem]]:
    problems = _check_schema("baseline", data, src, shown)
    if problems:
        return None, problems
    filled = _fill_defaults(copy.deepcopy(data), schema("baseline"), schema("baseline"))
    out = _Collector(shown, src)
    _check_baseline(filled, out)
    return (None if out.problems else filled), out.problems


def _validate_election(
    data: Any, src: Source | None, shown: str, stem: str, baseline: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, list[Problem]]:
    problems = _check_schema("election", data, src, shown)
    if problems:
        return None, problems
    filled = _fill_defaults(copy.deepcopy(data), schema("election"), schema("election"))
    out = _Collector(shown, src)
    _check_election(filled, baseline, stem, out)
    return (None if out.problems else filled), out.problems


def iam_groups_of(p: m.Policies, person: m.Person) -> list[str]:
    """The IAM groups Terraform puts `person` in (infra/modules/account_baseline):
    `people`, and `admins` for an administrator. An election has no group: its
    members are named in its bucket and key policies (docs/infra.md, "The access
    model")."""
    return ["people"] + (["admins"] if person.admin else [])


def iam_group_count(p: m.Policies) -> int:
    """IAM groups the Terraform creates: people and admins, for any number of elections."""
    return 2


def election_policy_sizes(p: m.Policies, e: m.Election) -> tuple[int, int]:
    """(bucket policy, key policy) sizes in bytes of election `e`, as
    infra/modules/election_policies renders them (isoloir.policy.access)."""
    b = p.baseline
    bucket, key = access.election_documents(
        slug=b.organisation.slug,
        election_id=e.id,
        region=e.region,
        bucket_name=e.bucket_name,
        members=e.members,
        admin_principal_arns=[*b.deployer_principals, *b.break_glass_roles],
        retention_date=e.retention_due.isoformat(),
        legal_hold=e.legal_hold,
    )
    return access.size(bucket), access.size(key)


def _check_policy_sizes(
    p: m.Policies, elections: list[tuple[str, Source | None, m.Election]]
) -> list[Problem]:
    """An election's members are named in its bucket policy (S3: 20 KB) and its
    key policy (KMS: 32 KB): refuse the election whose policy would not fit."""
    problems = []
    for file, src, e in elections:
        bucket, key = election_policy_sizes(p, e)
        over = [
            (what, got, limit, rule)
            for what, got, limit, rule in (
                ("bucket policy", bucket, access.S3_BUCKET_POLICY_MAX, "S3 allows 20 KB"),
                ("key policy", key, access.KMS_KEY_POLICY_MAX, "KMS allows 32 KB"),
            )
            if got > limit
        ]
        if not over:
            continue
        what, got, limit, rule = over[0]
        # How many members to take out (the last ones listed) for both to fit.
        kept = list(e.members)
        while kept and any(
            s > lim
            for s, lim in zip(
                election_policy_sizes(p, dataclasses.replace(e, members=tuple(kept))),
                (access.S3_BUCKET_POLICY_MAX, access.KMS_KEY_POLICY_MAX),
                strict=True,
            )
        ):
            kept.pop()
        problems.append(
            Problem(
                file,
                src.line_of(("members",)) if src else 0,
                "members",
                f"{len(e.members)} members make the election's {what} {got:,} bytes "
                f"long; {rule} ({limit:,} bytes: S3 User Guide, 'Bucket policies and user "
                "policies'; KMS Developer Guide, 'Key policy format'), and each member is "
                f"named in it: {len(kept)} of these members fit, remove "
                f"{len(e.members) - len(kept)} or split the election",
            )
        )
    return problems


def terraform_tags(
    p: m.Policies, base_file: str = "baseline.yml"
) -> list[tuple[str, str, str, str]]:
    """(policy file, resource, tag key, tag value) for every tag the Terraform
    sets from the policies (infra/: default_tags, election_storage, account_baseline,
    region, file_share_host). tests/unit/test_policy_quotas.py checks this list
    against the tag keys infra/ writes."""
    b = p.baseline
    slug = b.organisation.slug
    base = base_file
    tags = [
        (base, "every resource", "isoloir:org", slug),
        (base, "every resource", "isoloir:managed-by", "terraform"),
    ]
    tags += [(base, f"IAM user {x.id}", "isoloir:person", x.id) for x in b.people]
    tags += [(base, "access-log buckets", "isoloir:purpose", "access-logs")]
    for region in sorted({e.region for e in p.elections}):
        held = [e for e in p.elections if e.region == region]
        host = f"file-share host {region}"
        tags += [
            (base, host, "Name", f"{slug}-shares-{region}"),
            (base, host, "isoloir:election-count", str(len(held))),
        ]
    for e in p.elections:
        what = f"bucket and key of {e.id}"
        tags += [
            (e.source, what, "isoloir:election", e.id),
            (e.source, what, "isoloir:retention-due", e.retention_due.isoformat()),
            (e.source, what, "isoloir:legal-hold", str(e.legal_hold).lower()),
        ]
    return tags


def tag_problems(tags: Iterable[tuple[str, str, str, str]]) -> list[Problem]:
    problems = []
    for file, resource, key, value in tags:
        if len(key) > TAG_KEY_MAX or len(value) > TAG_VALUE_MAX:
            problems.append(
                Problem(
                    file,
                    0,
                    "",
                    f"the tag {key[:40]!r} of the {resource} would be {len(value)} characters "
                    f"long: AWS allows {TAG_VALUE_MAX} per tag value and {TAG_KEY_MAX} per "
                    "key (EC2, S3, KMS, IAM)",
                )
            )
    return problems


def _check_quotas(p: m.Policies, base_file: str, base_src: Source | None) -> list[Problem]:
    """What IAM would refuse at apply time: groups per user, groups and users per account."""

    def line(path: Path_) -> int:
        return base_src.line_of(path) if base_src else 0

    problems = []
    for i, person in enumerate(p.baseline.people):
        groups = iam_groups_of(p, person)
        if len(groups) > IAM_GROUPS_PER_USER:
            elections = len(groups) - (2 if person.admin else 1)
            problems.append(
                Problem(
                    base_file,
                    line(("people", i, "id")),
                    _field(("people", i)),
                    f"{person.id!r} would be in {len(groups)} IAM groups (people"
                    f"{', admins' if person.admin else ''} and {elections} elections' "
                    f"groups); AWS allows an IAM user in at most {IAM_GROUPS_PER_USER} "
                    "groups (IAM quota 'Groups an IAM user can be a member of', not "
                    f"adjustable): remove them from {len(groups) - IAM_GROUPS_PER_USER} "
                    "election(s)' members",
                )
            )
    people = len(p.baseline.people)
    if people > access.IAM_USERS_PER_ACCOUNT:
        problems.append(
            Problem(
                base_file,
                line(("people",)),
                "people",
                f"{people} people would be {people} IAM users; AWS allows "
                f"{access.IAM_USERS_PER_ACCOUNT} per account (IAM quota 'Users in an AWS "
                "account', not adjustable): federate the people instead",
            )
        )
    needed = iam_group_count(p)
    quota = p.baseline.iam_groups_quota
    if needed > quota:
        problems.append(
            Problem(
                base_file,
                line(("aws", "iam_groups_quota")),
                "aws.iam_groups_quota",
                f"the kit needs {needed} IAM groups (people and admins), above the "
                f"account's quota of {quota} groups (AWS's "
                f"default is {IAM_GROUPS_DEFAULT_QUOTA} per account; it can be raised in "
                "Service Quotas, then set aws.iam_groups_quota to the new value)",
            )
        )
    return problems


def _assemble(
    baseline: dict[str, Any],
    elections: list[tuple[str, Source | None, dict[str, Any]]],
    base_file: str = "baseline.yml",
    base_src: Source | None = None,
) -> m.Policies:
    b = _build_baseline(baseline)
    built = [(f, s, _build_election(e, b, f)) for f, s, e in elections]
    problems = _check_across(built)
    policies = m.Policies(
        baseline=b, elections=tuple(sorted((e for _, _, e in built), key=lambda e: e.id))
    )
    problems += _check_quotas(policies, base_file, base_src)
    problems += _check_policy_sizes(policies, built)
    problems += tag_problems(terraform_tags(policies, base_file))
    if problems:
        raise PolicyError(problems)
    return policies


TARGETS = ("local", "aws")


def aws_target_problems(p: m.Policies, base_file: str, base_src: Source | None) -> list[Problem]:
    """What TARGET=aws needs beyond valid policies (aws-readiness N5, N6, F13):
    the deploying principals and a break-glass role (else a second administrator
    gets 403 on every election bucket), the mail guard's upstream (EC2 restricts
    direct delivery on port 25, and the hosts' security group opens only the
    upstream's port), and a bucket suffix (S3 names are global: default names
    are easy to predict and to take first)."""

    def line(path: Path_) -> int:
        return base_src.line_of(path) if base_src else 0

    b = p.baseline
    problems = []
    if not b.deployer_principals:
        problems.append(
            Problem(
                base_file,
                line(("aws", "deployer_principals")),
                "aws.deployer_principals",
                "TARGET=aws needs the IAM roles (or users) that run the deploy, e.g. "
                "[arn:aws:iam::<account>:role/isoloir-deploy] or an IAM Identity Center "
                "role ending in AWSReservedSSO_<permission set>_*: the election buckets "
                "let only them list the buckets, which Terraform's refresh needs",
            )
        )
    if not b.break_glass_roles:
        problems.append(
            Problem(
                base_file,
                line(("aws", "break_glass_roles")),
                "aws.break_glass_roles",
                "TARGET=aws needs at least one emergency role ARN, excepted like the "
                "deployers, to repair a bucket policy when no deployer is left",
            )
        )
    if b.mail.enabled and b.mail.upstream is None:
        problems.append(
            Problem(
                base_file,
                line(("mail", "upstream")),
                "mail.upstream",
                "TARGET=aws needs the party's smarthost ({host: ..., port: 587}, or 25) "
                "while mail.enabled: EC2 restricts direct delivery on port 25, and the "
                "hosts' security group opens only the upstream's port",
            )
        )
    if not b.organisation.bucket_suffix:
        problems.append(
            Problem(
                base_file,
                line(("organisation", "bucket_suffix")),
                "organisation.bucket_suffix",
                "TARGET=aws needs a suffix of 4 to 12 lower-case letters or digits "
                "(e.g. the output of `openssl rand -hex 4`), chosen once before the first "
                "deploy: S3 bucket names are global, and <slug>-<election> is easy to "
                "take first",
            )
        )
    return problems


def load_policies(directory: str | Path = "policies", *, target: str = "local") -> m.Policies:
    """Load and validate a policies directory. Raises PolicyError listing every
    problem. `target="aws"` also refuses what a real deploy needs and lacks
    (aws_target_problems)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}")
    root = Path(directory)
    problems: list[Problem] = []
    base_path = root / "baseline.yml"
    if not root.is_dir():
        reason = "not a directory" if root.exists() else "no such policies directory"
        raise PolicyError([Problem(_display(root), 0, "", reason)])
    src, read_problems = _read(base_path, _display(base_path), root)
    problems += read_problems
    baseline: dict[str, Any] | None = None
    if src is not None:
        baseline, found = _validate_baseline(src.data, src, _display(base_path))
        problems += found
    elections: list[tuple[str, Source | None, dict[str, Any]]] = []
    election_dir = root / "elections"
    files = sorted(election_dir.glob("*.yml")) + sorted(election_dir.glob("*.yaml"))
    for path in files:
        shown = _display(path)
        esrc, read_problems = _read(path, shown, root)
        problems += read_problems
        if esrc is None:
            continue
        stem = path.name.rsplit(".", 1)[0]
        election, found = _validate_election(esrc.data, esrc, shown, stem, baseline)
        problems += found
        if election is not None:
            elections.append((shown, esrc, election))
    if problems or baseline is None:
        raise PolicyError(problems)
    policies = _assemble(baseline, elections, _display(base_path), src)
    if target == "aws":
        found = aws_target_problems(policies, _display(base_path), src)
        if found:
            raise PolicyError(found)
    return policies


# ---------------------------------------------------- normalised (rendered)


def _duration_text(d: Duration) -> str:
    return str(d)


def normalise(p: m.Policies) -> dict[str, Any]:
    """The policies as plain data in the YAML's shape, every default filled in."""
    b = p.baseline
    org = b.organisation
    al = b.alerts
    baseline: dict[str, Any] = {
        "version": 1,
        "organisation": {
            "party": org.party,
            "slug": org.slug,
            "controller": {
                "name": org.controller_name,
                "address": org.controller_address,
                "representative": org.representative,
            },
            "rights_contact": org.rights_contact,
            "dpo_contact": org.dpo_contact,
            "unsubscribe": org.unsubscribe,
            **({"bucket_suffix": org.bucket_suffix} if org.bucket_suffix else {}),
        },
        "regions": {"default": b.regions.default, "allowed": list(b.regions.allowed)},
        "passwords": {
            "profile": b.passwords.profile,
            "min_length": b.passwords.min_length,
            "min_classes": b.passwords.min_classes,
            "passphrase_words": b.passwords.passphrase_words,
            "dictionary_check": b.passwords.dictionary_check,
            "reuse_prevention": b.passwords.reuse_prevention,
            "max_age_days": b.passwords.max_age_days,
            "admin_max_age_days": b.passwords.admin_max_age_days,
        },
        "lockout": {
            "attempts": b.lockout.attempts,
            "window_seconds": b.lockout.window_seconds,
            "unlock_seconds": b.lockout.unlock_seconds,
        },
        "mfa": {"required": b.mfa.required, "method": b.mfa.method},
        "retention": {
            "max_after_last_round": _duration_text(b.retention.max_after_last_round),
            "warn_days": list(b.retention.warn_days),
            "kms_deletion_window_days": b.retention.kms_deletion_window_days,
            "permanent_review": _duration_text(b.retention.permanent_review),
            "permanent_contacts": {
                "path": b.retention.contacts_path,
                "columns": list(b.retention.contacts_columns),
            },
        },
        "people": [
            {
                "id": x.id,
                "name": x.name,
                "email": x.email,
                "admin": x.admin,
                "ssh_keys": list(x.ssh_keys),
            }
            for x in b.people
        ],
        "alerts": {
            "language": al.language,
            "min_severity": al.min_severity,
            "renotify_hours": al.renotify_hours,
            "flood": {"max_alerts": al.flood_max_alerts, "window_minutes": al.flood_window_minutes},
            "digest": {"enabled": al.digest_enabled, "time": al.digest_time},
            "webhooks": [
                {"name": w.name, "url": w.url, "template": w.template, "secret_file": w.secret_file}
                for w in al.webhooks
            ],
            "routes": [
                {
                    "recipients": list(r.recipients),
                    "channels": list(r.channels),
                    "min_severity": r.min_severity,
                    "elections": list(r.elections),
                }
                for r in al.routes
            ],
        },
        "schedules": {
            "scan_interval_minutes": b.schedules.scan_interval_minutes,
            "identity_time": b.schedules.identity_time,
            "retention_time": b.schedules.retention_time,
            "jitter_seconds": b.schedules.jitter_seconds,
        },
        "hosts": {
            "share_root": b.hosts.share_root,
            "admin_networks": list(b.hosts.admin_networks),
            "stray_data_paths": list(b.hosts.stray_data_paths),
            "at_rest": b.hosts.at_rest,
        },
        "identity": {"max_access_key_age_days": b.identity.max_access_key_age_days},
        "phone_banking": {
            "windows": [
                {"days": list(w.days), "from": w.start, "to": w.end}
                for w in b.phone_banking.windows
            ],
            "public_holidays": b.phone_banking.public_holidays,
        },
        "remediation": {
            "s3_public_access_block": b.remediation.s3_public_access_block,
            "s3_public_grants": b.remediation.s3_public_grants,
            "share_permissions": b.remediation.share_permissions,
            "share_group_ownership": b.remediation.share_group_ownership,
        },
    }
    mail: dict[str, Any] = {
        "enabled": b.mail.enabled,
        "max_visible_recipients": b.mail.max_visible_recipients,
        "transparency": b.mail.transparency,
        "language": b.mail.language,
        "party_domains": list(b.mail.party_domains),
        "unsubscribe_confirm": b.mail.unsubscribe_confirm,
    }
    if b.mail.upstream is not None:
        mail["upstream"] = {"host": b.mail.upstream.host, "port": b.mail.upstream.port}
    baseline["mail"] = mail
    if b.hosts.image_ids or b.hosts.subnet_ids:
        baseline["hosts"]["aws"] = {
            "image_ids": dict(b.hosts.image_ids),
            "subnet_ids": dict(b.hosts.subnet_ids),
        }
    aws_section: dict[str, Any] = {}
    if b.iam_groups_quota != IAM_GROUPS_DEFAULT_QUOTA:
        aws_section["iam_groups_quota"] = b.iam_groups_quota
    if b.deployer_principals:
        aws_section["deployer_principals"] = list(b.deployer_principals)
    if b.break_glass_roles:
        aws_section["break_glass_roles"] = list(b.break_glass_roles)
    if aws_section:
        baseline["aws"] = aws_section
    if al.email:
        baseline["alerts"]["email"] = {
            "host": al.email.host,
            "port": al.email.port,
            "security": al.email.security,
            "from": al.email.sender,
            "credentials_file": al.email.credentials_file,
        }
    elections = []
    for e in p.elections:
        retention = (
            {"after": _duration_text(e.retention_after)}
            if e.retention_after is not None
            else {"date": e.retention_date.isoformat() if e.retention_date else ""}
        )
        datasets = []
        for ds in e.datasets:
            item: dict[str, Any] = {
                "name": ds.name,
                "bucket_prefix": ds.bucket_prefix,
                "share_path": ds.share_path,
                "origin": ds.origin,
                "legal_basis": ds.legal_basis,
                "category": ds.category,
            }
            if ds.art9_condition:
                item["art9_condition"] = ds.art9_condition
            if ds.no_opt_outs:
                item["no_opt_outs"] = ds.no_opt_outs
            if ds.review is not None:
                item["review"] = _duration_text(ds.review)
            if ds.tabular is not None:
                tab: dict[str, Any] = {}
                for key, rule in (("consent", ds.tabular.consent), ("opt_out", ds.tabular.opt_out)):
                    if rule is not None:
                        tab[key] = {"column": rule.column, "accepted": list(rule.accepted)}
                if ds.tabular.email_column:
                    tab["email_column"] = ds.tabular.email_column
                if ds.tabular.phone_column:
                    tab["phone_column"] = ds.tabular.phone_column
                for key, columns in (
                    ("name_columns", ds.tabular.name_columns),
                    ("address_columns", ds.tabular.address_columns),
                ):
                    if columns:
                        tab[key] = list(columns)
                item["tabular"] = tab
            datasets.append(item)
        elections.append(
            {
                "source": e.source,
                "policy": {
                    "id": e.id,
                    "label": e.label,
                    "kind": e.kind,
                    "scope": e.scope,
                    "region": e.region,
                    "bucket": e.bucket_name,
                    "share": e.share_path,
                    "rounds": [r.isoformat() for r in e.rounds],
                    "retention": retention,
                    "legal_hold": {"active": e.legal_hold, "reason": e.legal_hold_reason},
                    "members": list(e.members),
                    "datasets": datasets,
                },
            }
        )
    return {"format": RENDERED_FORMAT, "baseline": baseline, "elections": elections}


def from_normalised(data: Any, shown: str = "agent.json") -> m.Policies:
    """Rebuild Policies from `normalise`'s output, validating it again."""
    if not isinstance(data, dict) or data.get("format") != RENDERED_FORMAT:
        raise PolicyError(
            [Problem(shown, 0, "format", f"not a rendered config of format {RENDERED_FORMAT}")]
        )
    baseline, problems = _validate_baseline(data.get("baseline"), None, shown)
    elections: list[tuple[str, Source | None, dict[str, Any]]] = []
    raw_elections = data.get("elections")
    if not isinstance(raw_elections, list):
        raise PolicyError([*problems, Problem(shown, 0, "elections", "must be a list")])
    for i, item in enumerate(raw_elections):
        if not isinstance(item, dict) or not isinstance(item.get("policy"), dict):
            problems.append(Problem(shown, 0, f"elections[{i}]", "must hold source and policy"))
            continue
        policy = item["policy"]
        source = str(item.get("source", shown))
        election, found = _validate_election(policy, None, source, str(policy.get("id")), baseline)
        problems += found
        if election is not None:
            elections.append((source, None, election))
    if problems or baseline is None:
        raise PolicyError(problems)
    return _assemble(baseline, elections, shown)


def load_rendered(path: str | Path) -> m.Policies:
    """Load the agents' config written by `isoloir policy render`."""
    p = Path(path)
    try:
        data = json.loads(read_text(p, MAX_RENDERED_BYTES))
    except ReadError as exc:
        raise PolicyError([Problem(str(p), exc.line, "", exc.reason)]) from None
    except (ValueError, RecursionError) as exc:
        raise PolicyError([Problem(str(p), 0, "", f"not valid JSON: {exc}")]) from None
    return from_normalised(data, str(p))
