"""What `playbooks/site.yml` needs from the controller: an inventory and a wheelhouse.

- `from_terraform(outputs)`: the Ansible inventory of the aws target, from
  `terraform output -json` (the output ``file_share_hosts``, a map of host name
  to ``{"address": ..., "ssh_user": ..., "region": ..., "elections": [...],
  "data_volume_id": ...}``); each host gets `isoloir_host_elections`, the
  elections of its region, and serves only those (N4). A new
  instance's host key is accepted on first sight (`StrictHostKeyChecking=accept-new`)
  into the deploy's own known_hosts file, and checked at every later
  connection; the play waits for SSH and cloud-init first
  (`isoloir_wait_for_host`); the mail relay listens on loopback and the host's
  private address (staff submit on 587 from the admin networks).
- `isoloir.controller.sandbox.inventory(hosts)`: the inventory of the local target.
- `build_wheelhouse(out)`: the isoloir wheel and the wheels of its pinned
  dependencies, so hosts install the agents without any package index. The
  dependency wheels are cached outside the repository, keyed by the lock file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from isoloir.controller.sandbox import CACHE_DIR, DEPLOY_USER

REPO = Path(__file__).resolve().parents[3]
GROUP = "isoloir_hosts"
TERRAFORM_OUTPUT = "file_share_hosts"


class InventoryError(ValueError):
    """The Terraform outputs do not describe the file-share hosts."""


# [user@]host[:port] of an SSH jump host: no space, no option, no shell syntax.
_JUMP = re.compile(
    r"(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+(?::[0-9]{1,5})?|"
    r"(?:[A-Za-z0-9._-]+@)?\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?"
)


def ssh_arguments(known_hosts: Path, proxy_jump: str | None = None) -> str:
    """ssh options for the new hosts (ansible_ssh_common_args): no prompt, no
    blind trust. A host key never seen is recorded in `known_hosts` (the
    deploy's run directory) and a changed one is refused (`accept-new`). A jump
    host gets the same options through an explicit ProxyCommand (ssh's own
    ProxyJump would check it against ~/.ssh/known_hosts and prompt)."""
    options = [
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "IdentitiesOnly=yes",
    ]
    if proxy_jump:
        if not _JUMP.fullmatch(proxy_jump) or proxy_jump.startswith("-"):
            raise InventoryError(f"proxy jump host {proxy_jump!r}: expected [user@]host[:port]")
        host, port = proxy_jump, ""
        if re.search(r":[0-9]+$", proxy_jump) and not proxy_jump.endswith("]"):
            host, port = proxy_jump.rsplit(":", 1)
        jump = [
            "ssh",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            *(["-p", port] if port else []),
            "-W",
            "%h:%p",
            "--",
            host.replace("[", "").replace("]", ""),
        ]
        options += ["-o", "ProxyCommand=" + shlex.join(jump)]
    return shlex.join(options)


def account_auditor(hosts: Mapping[str, Any], region: str | None) -> str | None:
    """The host that audits the account: the one in `region` when there is one,
    else the first by name (stable from one deploy to the next)."""
    names = sorted(str(n) for n in hosts)
    for name in names:
        host = hosts[name]
        if region is not None and isinstance(host, Mapping) and host.get("region") == region:
            return name
    return names[0] if names else None


def from_terraform(
    outputs: Mapping[str, Any],
    key_file: str | None = None,
    deploy_sources: Sequence[str] = (),
    *,
    known_hosts: Path | None = None,
    proxy_jump: str | None = None,
    account_region: str | None = None,
) -> dict[str, Any]:
    """Inventory of the aws target from `terraform output -json`
    (`account_region`: the region whose host audits the account, normally the
    policies' default region)."""
    entry = outputs.get(TERRAFORM_OUTPUT)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("value"), Mapping):
        raise InventoryError(f"terraform output {TERRAFORM_OUTPUT!r} is missing or not a map")
    hosts: dict[str, Any] = {}
    auditor = account_auditor(entry["value"], account_region)
    for name, host in sorted(entry["value"].items()):
        if not isinstance(host, Mapping) or not host.get("address"):
            raise InventoryError(f"host {name!r} of {TERRAFORM_OUTPUT!r} has no address")
        hostvars: dict[str, Any] = {
            "ansible_host": str(host["address"]),
            "ansible_user": str(host.get("ssh_user", DEPLOY_USER)),
        }
        elections = host.get("elections")
        if not isinstance(elections, Sequence) or isinstance(elections, str):
            raise InventoryError(f"host {name!r} of {TERRAFORM_OUTPUT!r} has no election list")
        # N4: the host serves its region's elections only (its shares, its
        # people's groups, the agents' purges and scans); the roles filter
        # isoloir_elections by it.
        hostvars["isoloir_host_elections"] = sorted(str(e) for e in elections)
        # One host audits the account (IAM, the account's public access block,
        # undeclared buckets): every host doing it would send every alert N times.
        hostvars["isoloir_host_account_audit"] = name == auditor
        if host.get("region"):
            hostvars["isoloir_host_region"] = str(host["region"])
        if host.get("data_volume_id"):
            # The encrypted EBS data volume the election_shares role mounts on
            # the share root (found by its serial, never by a device name).
            hostvars["isoloir_data_volume_id"] = str(host["data_volume_id"])
        if key_file:
            hostvars["ansible_ssh_private_key_file"] = key_file
        if known_hosts is not None:
            hostvars["ansible_ssh_common_args"] = ssh_arguments(known_hosts, proxy_jump)
        # The mail relay: loopback (the agents' alerts) and the private address
        # (the party's people submit on 587 from the admin networks; N5).
        hostvars["mail_guard_listen_addresses"] = ["127.0.0.1", str(host["address"])]
        hosts[str(name)] = hostvars
    group_vars: dict[str, Any] = {
        "isoloir_service_manager": "systemd",
        # playbooks/site.yml: SSH and cloud-init's first boot waited for (N7).
        "isoloir_wait_for_host": True,
    }
    if deploy_sources:
        group_vars["hardening_deploy_sources"] = list(deploy_sources)
    return {"all": {"children": {GROUP: {"hosts": hosts, "vars": group_vars}}}}


def _dependencies(repo: Path) -> list[str]:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    return [str(dep) for dep in project.get("dependencies", [])]


def build_wheelhouse(out: Path, repo: Path = REPO, cache_dir: Path = CACHE_DIR) -> Path:
    """Write the isoloir wheel and its dependencies' wheels into `out`."""
    lock = repo / "requirements.lock"
    deps = _dependencies(repo)
    key = hashlib.sha256(
        (lock.read_text() + "\n" + "\n".join(sorted(deps)) + sys.version[:4]).encode()
    ).hexdigest()[:16]
    cached = cache_dir / f"wheels-{key}"
    if not cached.is_dir():
        partial = cache_dir / f"wheels-{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--disable-pip-version-check",
                "--wheel-dir",
                str(partial),
                "--constraint",
                str(lock),
                *deps,
            ],
            check=True,
        )
        partial.rename(cached)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("isoloir-*.whl"):
        old.unlink()
    for wheel in cached.glob("*.whl"):
        target = out / wheel.name
        if not target.exists():
            shutil.copy2(wheel, target)
    build = out.parent / (out.name + ".build")
    wheel = build_host_wheel(repo, build)
    shutil.move(str(wheel), out / wheel.name)
    shutil.rmtree(build, ignore_errors=True)
    return out


def build_host_wheel(repo: Path, work: Path) -> Path:
    """The hosts' isoloir wheel (no controller), built under `work`; its path."""
    shutil.rmtree(work, ignore_errors=True)
    source = stage_host_source(repo, work / "source")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--wheel-dir",
            str(work / "wheel"),
            str(source),
        ],
        check=True,
        # Same sources, same wheel bytes: the hosts' copy changes only with the code.
        env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
    )
    (wheel,) = (work / "wheel").glob("isoloir-*.whl")
    return wheel


# What a host never receives: this package (the controller's code).
CONTROLLER_PACKAGE = "controller"


def stage_host_source(repo: Path, dest: Path) -> Path:
    """A copy of the project without `isoloir.controller`: the source of the
    hosts' wheel, so a file-share host gets the agents and nothing that deploys,
    emulates or boots sandboxes (docs/hosts.md, "What a host receives")."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copy2(repo / "pyproject.toml", dest / "pyproject.toml")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", CONTROLLER_PACKAGE)
    package = repo / "agents" / "isoloir"
    shutil.copytree(package, dest / "agents" / "isoloir", ignore=_top_level_only(package, skip))
    return dest


def _top_level_only(
    package: Path, skip: Callable[[str, list[str]], set[str]]
) -> Callable[[str, list[str]], set[str]]:
    """Ignore `controller` only directly under the package; caches everywhere."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(skip(directory, names))
        if Path(directory) != package:
            ignored.discard(CONTROLLER_PACKAGE)
        return ignored

    return ignore


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isoloir.controller.inventory")
    sub = parser.add_subparsers(dest="action", required=True)
    wheels = sub.add_parser("wheelhouse", help="build the wheelhouse for the agents role")
    wheels.add_argument("--out", type=Path, required=True)
    tf = sub.add_parser("terraform", help="inventory from `terraform output -json`")
    tf.add_argument("outputs", type=Path, help="file written by `terraform output -json`")
    tf.add_argument("--out", type=Path, required=True)
    tf.add_argument("--key-file")
    tf.add_argument("--deploy-source", action="append", default=[])
    args = parser.parse_args(argv)
    if args.action == "wheelhouse":
        print(build_wheelhouse(args.out))
        return 0
    try:
        inv = from_terraform(
            json.loads(args.outputs.read_text()), args.key_file, args.deploy_source
        )
    except InventoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(inv, indent=2) + "\n")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
