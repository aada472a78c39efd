"""F6: people with a shell must not reach the instance metadata service.

The hardening role loads an nftables table refusing 169.254.169.254 and
fd00:ec2::254 to every uid but root and the agents' user; a root timer writes
`nft -j list ruleset` where the agents can read it, and the check
`host_metadata_reachable` reads that snapshot. RULESET below is the real output
of nft 1.0.6 (Debian 12) after loading the role's file with uids 0 and 998.
"""

from __future__ import annotations

import copy
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _host_templates import render

from isoloir.exposure import inventory_identity
from isoloir.exposure.checks import host_metadata_reachable as check
from isoloir.exposure.model import IdentityInventory, Inventory, MetadataGuard
from isoloir.exposure.registry import discover, run
from isoloir.policy import load_policies

REPO = Path(__file__).resolve().parents[2]
AGENT_UID = 998

RULESET: dict[str, Any] = json.loads(
    '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", '
    '"json_schema_version": 1}}, {"table": {"family": "inet", "name": "isoloir_metadata", '
    '"handle": 3}}, {"chain": {"family": "inet", "table": "isoloir_metadata", "name": "output", '
    '"handle": 1, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}, '
    '{"rule": {"family": "inet", "table": "isoloir_metadata", "chain": "output", "handle": 3, '
    '"expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, '
    '"right": "169.254.169.254"}}, {"match": {"op": "!=", "left": {"meta": {"key": "skuid"}}, '
    '"right": {"set": [0, 998]}}}, {"counter": {"packets": 0, "bytes": 0}}, {"reject": '
    '{"type": "icmpx", "expr": "admin-prohibited"}}]}}, {"rule": {"family": "inet", "table": '
    '"isoloir_metadata", "chain": "output", "handle": 5, "expr": [{"match": {"op": "==", '
    '"left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "fd00:ec2::254"}}, '
    '{"match": {"op": "!=", "left": {"meta": {"key": "skuid"}}, "right": {"set": [0, 998]}}}, '
    '{"counter": {"packets": 0, "bytes": 0}}, {"reject": {"type": "icmpx", '
    '"expr": "admin-prohibited"}}]}}]}'
)
EMPTY: dict[str, Any] = {"nftables": [RULESET["nftables"][0]]}


def _hits(guard: MetadataGuard | None) -> dict[str, str]:
    policies = load_policies(REPO / "policies")
    ident = IdentityInventory(iam_fetched=True, metadata=guard)
    inv = Inventory(policies=policies, now=datetime(2027, 1, 1, tzinfo=UTC), identity=ident)
    wanted = {"host_metadata_reachable": discover()["host_metadata_reachable"]}
    return {r.finding.resource: r.finding.message for r in run(inv, checks=wanted)}


def _guard(ruleset: dict[str, Any] | None, on_aws: bool = True, age: float = 60.0) -> MetadataGuard:
    return MetadataGuard(
        on_aws=on_aws, agent_uid=AGENT_UID, snapshot="/run/isoloir-nft/ruleset.json",
        ruleset=ruleset, age_seconds=age,
    )  # fmt: skip


def test_the_roles_rule_passes() -> None:
    assert _hits(_guard(RULESET)) == {}


def test_no_rule_on_an_ec2_host_fails_for_both_addresses() -> None:
    hits = _hits(_guard(EMPTY))
    assert sorted(hits) == ["host-metadata:169.254.169.254", "host-metadata:fd00:ec2::254"]
    assert "no output rule refuses it" in hits["host-metadata:169.254.169.254"]


def test_a_rule_letting_a_persons_uid_through_fails() -> None:
    wider = copy.deepcopy(RULESET)
    wider["nftables"][3]["rule"]["expr"][1]["match"]["right"] = {"set": [0, 998, 1001]}
    hits = _hits(_guard(wider))
    assert list(hits) == ["host-metadata:169.254.169.254"]
    assert "uids 1001 through" in hits["host-metadata:169.254.169.254"]


def test_a_rule_without_verdict_or_in_an_input_chain_does_not_count() -> None:
    counted = copy.deepcopy(RULESET)
    counted["nftables"][3]["rule"]["expr"].pop()  # counter only, no reject
    assert "host-metadata:169.254.169.254" in _hits(_guard(counted))
    inbound = copy.deepcopy(RULESET)
    inbound["nftables"][2]["chain"]["hook"] = "input"
    assert len(_hits(_guard(inbound))) == 2


def test_a_rule_for_one_uid_only_is_not_a_guard() -> None:
    only = copy.deepcopy(RULESET)
    only["nftables"][3]["rule"]["expr"][1]["match"]["op"] = "=="
    assert "host-metadata:169.254.169.254" in _hits(_guard(only))


def test_a_whole_link_local_block_counts() -> None:
    wide = copy.deepcopy(RULESET)
    wide["nftables"][3]["rule"]["expr"][0]["match"]["right"] = {
        "prefix": {"addr": "169.254.0.0", "len": 16}
    }
    assert _hits(_guard(wide)) == {}


def test_snapshot_missing_stale_or_off_aws() -> None:
    assert list(_hits(_guard(None))) == ["host-metadata:snapshot"]  # EC2, nothing recorded
    assert _hits(_guard(None, on_aws=False)) == {}  # no metadata service, no guard installed
    assert len(_hits(_guard(EMPTY, on_aws=False))) == 2  # the guard was installed, then lost
    stale = _hits(_guard(RULESET, age=7200))
    assert (
        list(stale) == ["host-metadata:snapshot"]
        and "7200 s old" in stale["host-metadata:snapshot"]
    )
    assert _hits(None) == {}


def test_read_metadata_guard_from_the_snapshot_file(tmp_path: Path) -> None:
    snap = tmp_path / "ruleset.json"
    snap.write_text(json.dumps(RULESET))
    old = time.time() - 120
    os.utime(snap, (old, old))
    guard = inventory_identity.read_metadata_guard(snap, on_aws=True)
    assert guard.ruleset == RULESET and guard.agent_uid == os.geteuid() and guard.error == ""
    assert guard.age_seconds is not None and 100 < guard.age_seconds < 300
    missing = inventory_identity.read_metadata_guard(tmp_path / "none.json", on_aws=False)
    assert missing.ruleset is None and missing.error == ""
    (tmp_path / "link.json").symlink_to(snap)
    assert inventory_identity.read_metadata_guard(tmp_path / "link.json", on_aws=True).error
    (tmp_path / "bad.json").write_text("{")
    assert (
        inventory_identity.read_metadata_guard(tmp_path / "bad.json").error
        == "snapshot is not JSON"
    )


def test_ec2_detection(tmp_path: Path) -> None:
    vendor, xen = tmp_path / "sys_vendor", tmp_path / "uuid"
    assert not inventory_identity.on_ec2(vendor, xen)
    vendor.write_text("Amazon EC2\n")
    assert inventory_identity.on_ec2(vendor, xen)
    vendor.write_text("QEMU\n")
    xen.write_text("ec2e1916-9099-7caf-fd21-012345abcdef\n")
    assert inventory_identity.on_ec2(vendor, xen)


@pytest.mark.parametrize("uids", [[0, 998]])
def test_the_role_renders_the_rule_the_check_was_proven_on(uids: list[int]) -> None:
    text = render("hardening", "etc/isoloir-nft/metadata.nft.j2", hardening_metadata_uids=uids)
    rules = [line.strip() for line in text.splitlines() if "daddr" in line]
    tail = "meta skuid != { 0, 998 } counter reject with icmpx admin-prohibited"
    assert rules == [f"ip daddr 169.254.169.254 {tail}", f"ip6 daddr fd00:ec2::254 {tail}"]
    # idempotent reload in one transaction: create, delete, define
    assert text.index("delete table inet isoloir_metadata") < text.index(
        "table inet isoloir_metadata {"
    )
    assert check.guarded(RULESET, "169.254.169.254", {0, 998}) is None


def test_a_host_sharing_the_controllers_network_renders_the_guard_but_loads_nothing() -> None:
    """Files are rendered wherever the guard is on; loading waits for a host of its own."""
    import yaml

    role = REPO / "playbooks" / "roles" / "hardening"
    tasks = {t["name"]: t for t in yaml.safe_load((role / "tasks" / "metadata.yml").read_text())}

    def gate(task: dict[str, Any]) -> str:
        when = task.get("when", [])
        return " ".join([when] if isinstance(when, str) else when)

    rendered = [n for n, t in tasks.items() if "ansible.builtin.template" in t]
    rule = next(n for n in rendered if "metadata.nft" in str(tasks[n]["ansible.builtin.template"]))
    script = next(n for n in rendered if "snapshot" in str(tasks[n]["ansible.builtin.template"]))
    for name in (rule, script):
        assert gate(tasks[name]) == "hardening_metadata_guard | bool", name
    loading = [
        n
        for n, t in tasks.items()
        if "ansible.builtin.systemd_service" in t
        or "nft" in str(t.get("ansible.builtin.command", {}).get("argv", []))
        or ("ansible.builtin.template" in t and "systemd" in str(t["ansible.builtin.template"]))
    ]
    assert len(loading) == 5
    for name in loading:
        assert "hardening_metadata_apply | bool" in gate(tasks[name]), name
    handlers = yaml.safe_load((role / "handlers" / "main.yml").read_text())
    load = next(h for h in handlers if h["name"] == "Load the metadata guard")
    assert "hardening_metadata_apply" in gate(load)
    skipped = next(n for n in tasks if n.startswith("Say why"))
    assert "not loaded" in tasks[skipped]["ansible.builtin.debug"]["msg"]


def _unit(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> every value, in order (systemd keys may repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return values


def test_the_host_firewall_cannot_flush_the_guard_away() -> None:
    """Security N9: Debian's nftables.service flushes the whole ruleset at start,
    reload and stop; the guard comes after it at boot and is loaded again after each."""
    import yaml

    guard = _unit(render("hardening", "etc/systemd/system/isoloir-metadata-guard.service.j2"))
    after = " ".join(guard["Unit.After"]).split()
    assert "nftables.service" in after
    assert "nftables.service" not in " ".join(guard.get("Unit.Before", []))
    load = guard["Service.ExecStart"][0]
    assert load == "/usr/sbin/nft -f /etc/isoloir-nft/metadata.nft"

    dropin = "etc/systemd/system/nftables.service.d/isoloir-metadata-guard.conf"
    firewall = _unit(render("hardening", dropin + ".j2"))
    for key in ("ExecStartPost", "ExecReload", "ExecStopPost"):
        # appended to Debian's own commands, so it runs after their flush; "-" so a
        # missing guard file never makes the firewall itself fail
        assert firewall[f"Service.{key}"] == [f"-{load}"], key
    assert set(firewall) == {"Service.ExecStartPost", "Service.ExecReload", "Service.ExecStopPost"}

    role = REPO / "playbooks" / "roles" / "hardening"
    tasks = yaml.safe_load((role / "tasks" / "metadata.yml").read_text())
    units = next(t for t in tasks if t["name"].startswith("Units loading the guard"))
    assert "nftables.service.d/isoloir-metadata-guard.conf" in units["loop"]
    assert units["ansible.builtin.template"]["dest"] == "/etc/systemd/system/{{ item }}"
    assert units["notify"] == "Load the metadata guard"  # handler reloads systemd
    folder = next(t for t in tasks if t["name"].startswith("Drop-in directory"))
    assert folder["ansible.builtin.file"]["path"] == "/etc/systemd/system/nftables.service.d"
