"""A person with a shell can reach the instance metadata service (F6).

From a shell on an EC2 host, the metadata service hands out the agents'
instance-role credentials, which every election's bucket lets in. The
hardening role refuses 169.254.169.254 and fd00:ec2::254 to every uid but
root and the agents' user (nftables, `meta skuid`). The agents cannot read
the ruleset themselves (netlink needs CAP_NET_ADMIN), nor probe as another
uid; a root timer of the hardening role writes `nft -j list ruleset` to
/run/isoloir-nft/ruleset.json, and this check reads that snapshot.

Applies on an EC2 host (DMI) and on any host where the snapshot exists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from isoloir.exposure.model import Inventory, MetadataGuard
from isoloir.exposure.registry import Hit, check
from isoloir.findings import Severity
from isoloir.i18n import N_, Msg

ADDRESSES = {"169.254.169.254": "ip", "fd00:ec2::254": "ip6"}
STALE_SECONDS = 3600.0  # the timer writes every 5 minutes
VERDICTS = ("reject", "drop")


def _contains(right: Any, address: str) -> bool:
    """Does the right-hand side of a daddr match cover `address`?"""
    addr = ipaddress.ip_address(address)
    if isinstance(right, str):
        try:
            return addr in ipaddress.ip_network(right, strict=False)
        except ValueError:
            return False
    if isinstance(right, Mapping):
        if "set" in right:
            return any(_contains(x, address) for x in right["set"] or [])
        if "prefix" in right:
            pre = right["prefix"]
            return _contains(f"{pre.get('addr')}/{pre.get('len')}", address)
        if "range" in right:
            low, high = (ipaddress.ip_address(str(x)) for x in right["range"])
            return type(low) is type(addr) and low <= addr <= high  # type: ignore[operator]
    return False


def _uids(right: Any) -> set[int] | None:
    values = right.get("set") if isinstance(right, Mapping) else [right]
    out = set()
    for v in values or []:
        if isinstance(v, bool) or not isinstance(v, int):
            return None  # a range or a name: not what the role writes
        out.add(v)
    return out


def _matches(rule: Mapping[str, Any], address: str, family: str) -> tuple[bool, set[int]]:
    """(rule refuses `address`, the uids it lets through)."""
    targets, exempt, verdict = False, set[int](), False
    for expr in rule.get("expr") or []:
        if not isinstance(expr, Mapping):
            continue
        if any(k in expr for k in VERDICTS):
            verdict = True
        match = expr.get("match")
        if not isinstance(match, Mapping):
            continue
        left, op, right = match.get("left") or {}, match.get("op"), match.get("right")
        payload = left.get("payload") if isinstance(left, Mapping) else None
        meta = left.get("meta") if isinstance(left, Mapping) else None
        if isinstance(payload, Mapping) and payload.get("field") == "daddr":
            if (
                payload.get("protocol") == family
                and op in ("==", "in")
                and _contains(right, address)
            ):
                targets = True
        elif isinstance(meta, Mapping) and meta.get("key") == "skuid":
            uids = _uids(right)
            if op != "!=" or uids is None:
                return False, set()  # the rule only catches some uids: not a guard
            exempt |= uids
    return targets and verdict, exempt


def _output_chains(ruleset: list[Any]) -> set[tuple[str, str, str]]:
    chains = set()
    for item in ruleset:
        chain = item.get("chain") if isinstance(item, Mapping) else None
        if isinstance(chain, Mapping) and chain.get("hook") == "output":
            chains.add((str(chain.get("family")), str(chain.get("table")), str(chain.get("name"))))
    return chains


def guarded(ruleset: Mapping[str, Any], address: str, allowed: set[int]) -> Msg | None:
    """None when some output rule refuses `address` to every uid outside `allowed`,
    else why not."""
    items = ruleset.get("nftables")
    if not isinstance(items, list):
        return Msg(N_("the snapshot is not an nftables ruleset"))
    family = ADDRESSES[address]
    chains = _output_chains(items)
    widest: set[int] | None = None
    for item in items:
        rule = item.get("rule") if isinstance(item, Mapping) else None
        if not isinstance(rule, Mapping):
            continue
        key = (str(rule.get("family")), str(rule.get("table")), str(rule.get("chain")))
        if key not in chains or key[0] not in ("inet", family):
            continue
        refuses, exempt = _matches(rule, address, family)
        if not refuses:
            continue
        if exempt <= allowed:
            return None
        widest = exempt
    if widest is not None:
        return Msg(
            N_("the rule also lets uids {uids} through"),
            {"uids": [str(u) for u in sorted(widest - allowed)]},
        )
    return Msg(N_("no output rule refuses it"))


def _problems(guard: MetadataGuard) -> Iterator[tuple[str, Msg, dict[str, Any]]]:
    """(address or "snapshot", reason, evidence)."""
    if guard.error:
        yield (
            "snapshot",
            Msg(N_("the ruleset snapshot cannot be read ({error})"), {"error": guard.error}),
            {},
        )
        return
    if guard.ruleset is None:
        yield (
            "snapshot",
            Msg(N_("no ruleset snapshot: the hardening role's metadata guard is not installed")),
            {},
        )
        return
    if guard.age_seconds is not None and guard.age_seconds > STALE_SECONDS:
        age = int(guard.age_seconds)
        yield (
            "snapshot",
            Msg(N_("the ruleset snapshot is {age} s old (its timer stopped)"), {"age": age}),
            {"age_seconds": age},
        )
    allowed = {0} | ({guard.agent_uid} if guard.agent_uid is not None else set())
    for address in ADDRESSES:
        why = guarded(guard.ruleset, address, allowed)
        if why is not None:
            yield address, why, {"allowed_uids": sorted(allowed)}


@check(
    id="host_metadata_reachable",
    title=N_("People with a shell can reach the instance metadata service (the agents' role)"),
    severity=Severity.HIGH,
    scope="identity",
    reflex="segregate files",
    remediation=N_(
        "Run the hardening role: its nftables table isoloir_metadata refuses "
        "169.254.169.254 and fd00:ec2::254 to every uid but root and the agents' user, and its "
        "timer isoloir-nft-snapshot.timer records the ruleset for this check."
    ),
    permissions=("host:read /run/isoloir-nft/ruleset.json and /sys/class/dmi/id/sys_vendor",),
)
def evaluate(inv: Inventory) -> Iterator[Hit]:
    guard = inv.identity.metadata if inv.identity is not None else None
    if guard is None or not (guard.on_aws or guard.ruleset is not None or guard.error):
        return  # not EC2 and no guard installed: no metadata service to protect
    for what, why, evidence in _problems(guard):
        if what == "snapshot":
            message = N_(
                "Cannot tell whether people can reach the instance metadata service: {why}."
            )
        else:
            message = N_(
                "People with a shell can reach the instance metadata service at {address}: {why}."
            )
        yield Hit(
            resource=f"host-metadata:{what}",
            message=message,
            params={"why": why, "address": what},
            evidence={"snapshot": guard.snapshot, "on_aws": guard.on_aws, **evidence},
        )
