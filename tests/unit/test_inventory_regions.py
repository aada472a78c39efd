"""N4: each file-share host serves exactly the elections of its region.

The chain: Terraform's `file_share_hosts` output lists each host's elections;
the inventory passes them as `isoloir_host_elections`; the roles' defaults keep
only those elections (shares, people's groups, the agents' read-write paths and
/etc/isoloir/host.json); the agents read host.json and purge, certify and scan
only those elections, skipping the buckets of the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from moto import mock_aws
from tests.moto_env import use_in_process_aws

from isoloir import aws
from isoloir.controller import inventory
from isoloir.exposure import inventory_s3
from isoloir.policy import PolicyError, load_policies
from isoloir.policy.host import HOST_FILE_ENV, for_this_host, served_elections
from isoloir.policy.model import Policies

ROOT = Path(__file__).resolve().parents[2]


def _two_regions() -> Policies:
    """The example election (eu-west-3) and a copy of it in eu-west-1."""
    p = load_policies(ROOT / "policies")
    (paris,) = p.elections
    dublin = dataclasses.replace(
        paris,
        id="autreville-2027",
        region="eu-west-1",
        bucket_name=paris.bucket_name.replace(paris.id, "autreville-2027"),
        share_path=paris.share_path.replace(paris.id, "autreville-2027"),
    )
    return dataclasses.replace(p, elections=(paris, dublin))


def _outputs() -> dict[str, Any]:
    return {
        "file_share_hosts": {
            "value": {
                "isoloir-shares-eu-west-3": {
                    "address": "10.20.0.5",
                    "ssh_user": "isoloir-deploy",
                    "region": "eu-west-3",
                    "elections": ["exempleville-2027"],
                },
                "isoloir-shares-eu-west-1": {
                    "address": "10.30.0.5",
                    "ssh_user": "isoloir-deploy",
                    "region": "eu-west-1",
                    "elections": ["autreville-2027"],
                },
            }
        }
    }


def test_the_inventory_gives_each_host_its_regions_elections() -> None:
    hosts = inventory.from_terraform(_outputs())["all"]["children"][inventory.GROUP]["hosts"]
    assert hosts["isoloir-shares-eu-west-3"]["isoloir_host_elections"] == ["exempleville-2027"]
    assert hosts["isoloir-shares-eu-west-1"]["isoloir_host_elections"] == ["autreville-2027"]
    assert hosts["isoloir-shares-eu-west-1"]["isoloir_host_region"] == "eu-west-1"


def test_one_host_audits_the_account() -> None:
    """The default region's host, else the first by name; never two (issue 21)."""

    def auditors(region: str | None) -> list[str]:
        data = inventory.from_terraform(_outputs(), account_region=region)
        hosts = data["all"]["children"][inventory.GROUP]["hosts"]
        return [n for n, h in hosts.items() if h["isoloir_host_account_audit"]]

    assert auditors("eu-west-3") == ["isoloir-shares-eu-west-3"]
    assert auditors("eu-west-1") == ["isoloir-shares-eu-west-1"]
    assert auditors("eu-north-1") == ["isoloir-shares-eu-west-1"]
    assert auditors(None) == ["isoloir-shares-eu-west-1"]


def test_a_host_without_an_election_list_is_refused_not_given_all() -> None:
    outputs = _outputs()
    del outputs["file_share_hosts"]["value"]["isoloir-shares-eu-west-1"]["elections"]
    with pytest.raises(inventory.InventoryError, match="no election list"):
        inventory.from_terraform(outputs)
    outputs["file_share_hosts"]["value"]["isoloir-shares-eu-west-1"]["elections"] = "a"
    with pytest.raises(inventory.InventoryError, match="no election list"):
        inventory.from_terraform(outputs)


# -- the roles' defaults, rendered with the templating the playbook uses -----------

ROLE_DEFAULTS = {
    "election_shares": "election_shares_elections",
    "users": "users_elections",
    "agents": "agents_elections",
}


def _role_default(role: str, variable: str, hostvars: dict[str, Any]) -> list[dict[str, Any]]:
    text = (ROOT / "playbooks" / "roles" / role / "defaults" / "main.yml").read_text()
    expression = yaml.safe_load(text)[variable]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    rendered = env.from_string("{{ (" + expression.strip()[2:-2] + ") | tojson }}")
    return list(json.loads(rendered.render(**hostvars)))


@pytest.mark.parametrize("role", sorted(ROLE_DEFAULTS))
def test_the_roles_keep_only_the_hosts_elections(role: str) -> None:
    elections = [{"id": "exempleville-2027"}, {"id": "autreville-2027"}]
    variable = ROLE_DEFAULTS[role]
    served = _role_default(
        role,
        variable,
        {"isoloir_elections": elections, "isoloir_host_elections": ["autreville-2027"]},
    )
    assert served == [{"id": "autreville-2027"}]
    # the local target's sandbox host (no per-host list) serves every election
    assert _role_default(role, variable, {"isoloir_elections": elections}) == elections
    # a region's host with no election of its own gets none
    assert (
        _role_default(
            role, variable, {"isoloir_elections": elections, "isoloir_host_elections": []}
        )
        == []
    )


def test_the_agents_role_writes_host_json_from_its_elections() -> None:
    tasks = yaml.safe_load((ROOT / "playbooks/roles/agents/tasks/config.yml").read_text())
    (task,) = [t for t in tasks if t["name"].startswith("Elections this host serves")]
    assert task["ansible.builtin.copy"]["dest"].endswith("/host.json")
    content = task["ansible.builtin.copy"]["content"]
    assert "agents_elections" in content
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_nice_json"] = lambda v: json.dumps(v, indent=4, sort_keys=True)
    env.filters["bool"] = bool
    elections = [{"id": "b"}, {"id": "a"}]
    written = json.loads(env.from_string(content).render(agents_elections=elections,
                         isoloir_host_account_audit=False))  # fmt: skip
    assert written == {"elections": ["a", "b"], "account_audit": False}
    # the sandbox host (no inventory flag) audits the account, as before
    written = json.loads(env.from_string(content).render(agents_elections=elections))
    assert written["account_audit"] is True


# -- the agents ----------------------------------------------------------------------


def test_host_json_splits_the_policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _two_regions()
    host = tmp_path / "host.json"
    monkeypatch.setenv(HOST_FILE_ENV, str(host))
    assert served_elections() is None
    assert for_this_host(p) is p  # no file: every election
    host.write_text(json.dumps({"elections": ["autreville-2027", "gone-2020"]}))
    mine = for_this_host(p)
    assert [e.id for e in mine.elections] == ["autreville-2027"]
    assert [e.id for e in mine.elsewhere] == ["exempleville-2027"]
    # applied twice (a child process reloads): the same split
    again = mine.served_by(["autreville-2027"])
    assert [e.id for e in again.elections] == ["autreville-2027"]
    assert [e.id for e in again.elsewhere] == ["exempleville-2027"]
    # a file written before the flag: this host audits the account, as before
    assert mine.audits_account
    host.write_text(json.dumps({"elections": ["autreville-2027"], "account_audit": False}))
    assert not for_this_host(p).audits_account


@pytest.mark.parametrize(
    "text",
    ["{", '{"elections": "a"}', '["a"]', '{"elections": [1]}',
     '{"elections": [], "account_audit": "no"}'],
)  # fmt: skip
def test_a_malformed_host_json_is_an_error_not_every_election(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = tmp_path / "host.json"
    host.write_text(text)
    monkeypatch.setenv(HOST_FILE_ENV, str(host))
    with pytest.raises(PolicyError):
        for_this_host(_two_regions())


def test_the_daemon_and_the_clis_load_the_hosts_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from isoloir import daemon
    from isoloir.policy.render import rendered

    config = tmp_path / "agent.json"
    config.write_text(rendered(_two_regions())[Path("agent/agent.json")])
    host = tmp_path / "host.json"
    host.write_text(json.dumps({"elections": ["exempleville-2027"]}))
    monkeypatch.setenv(HOST_FILE_ENV, str(host))
    loaded = daemon.load_policies(str(config))
    assert [e.id for e in loaded.elections] == ["exempleville-2027"]
    assert [e.id for e in loaded.elsewhere] == ["autreville-2027"]
    # `isoloir scan` and `isoloir retention` on the host see the same share
    from isoloir.exposure import cli as exposure_cli
    from isoloir.retention import cli as retention_cli

    scanned = exposure_cli._policies(str(config))
    assert scanned is not None and [e.id for e in scanned.elections] == ["exempleville-2027"]
    args = argparse.Namespace(config=str(config))
    purged = retention_cli._policies(args)
    assert purged is not None and [e.id for e in purged.elsewhere] == ["autreville-2027"]


@pytest.fixture()
def two_buckets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Policies]:
    use_in_process_aws(monkeypatch)
    p = _two_regions()
    with mock_aws():
        for e in p.elections:
            aws.client("s3", e.region).create_bucket(
                Bucket=e.bucket_name, CreateBucketConfiguration={"LocationConstraint": e.region}
            )
        aws.client("s3").create_bucket(
            Bucket="undeclared-shadow",
            CreateBucketConfiguration={"LocationConstraint": "eu-west-3"},
        )
        yield p


def test_the_scan_skips_the_buckets_of_elections_served_elsewhere(
    two_buckets: Policies, tmp_path: Path
) -> None:
    p = two_buckets
    paris, dublin = p.elections
    journal = tmp_path / "retention.sqlite"
    every = inventory_s3.fetch(p, sample=False, retention_journal=journal)
    assert {b.name for b in every.buckets} == {
        paris.bucket_name,
        dublin.bucket_name,
        "undeclared-shadow",
    }
    assert every.buckets_elsewhere == []

    dublin_host = p.served_by([dublin.id])
    mine = inventory_s3.fetch(dublin_host, sample=False, retention_journal=journal)
    # its own bucket and the undeclared one (every host reports shadow storage);
    # the eu-west-3 election's bucket is its own host's to read
    assert {b.name for b in mine.buckets} == {dublin.bucket_name, "undeclared-shadow"}
    assert mine.buckets_elsewhere == [paris.bucket_name]

    # the access-log bucket of a region is its host's to read, not the others'
    dublin_logs = p.baseline.log_bucket_names["eu-west-1"]
    aws.client("s3", "eu-west-1").create_bucket(
        Bucket=dublin_logs, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    paris_host = p.served_by([paris.id])
    theirs = inventory_s3.fetch(paris_host, sample=False, retention_journal=journal)
    assert dublin_logs in theirs.buckets_elsewhere
    assert dublin_logs not in {b.name for b in theirs.buckets}
    mine = inventory_s3.fetch(dublin_host, sample=False, retention_journal=journal)
    assert dublin_logs in {b.name for b in mine.buckets}

    # a host that does not audit the account leaves undeclared storage to the one that does
    quiet = dataclasses.replace(dublin_host, audits_account=False)
    own = inventory_s3.fetch(quiet, sample=False, retention_journal=journal)
    assert {b.name for b in own.buckets} == {dublin.bucket_name, dublin_logs}
    assert own.buckets_elsewhere == sorted([paris.bucket_name, "undeclared-shadow"])
