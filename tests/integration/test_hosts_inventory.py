"""The controller side of the hosts part: mirror discovery, cache key, inventories,
and the sandbox teardown (pids, mounts) on a host with a stray process."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from isoloir.controller import sandbox
from isoloir.controller.inventory import GROUP, InventoryError, from_terraform

DEB822 = """Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_read_from_deb822_sources(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(DEB822)
    assert sandbox.debian_mirror([sources]) == "http://mirror.invalid/debian"


def test_mirror_read_from_one_line_sources(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list"
    sources.write_text(
        "# deb http://old.invalid/debian bookworm main\n"
        "deb http://mirror.invalid/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://mirror.invalid/debian bookworm main\n"
    )
    assert sandbox.debian_mirror([sources]) == "http://mirror.invalid/debian"


def test_no_mirror_is_an_error(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list"
    sources.write_text("deb http://mirror.invalid/debian trixie main\n")
    with pytest.raises(sandbox.SandboxError):
        sandbox.debian_mirror([sources, tmp_path / "missing.sources"])


def test_cache_key_follows_the_package_list() -> None:
    assert sandbox.cache_key() == sandbox.cache_key(reversed(sandbox.PACKAGES))
    assert sandbox.cache_key() != sandbox.cache_key([*sandbox.PACKAGES, "vim"])


def _host(name: str, init: str) -> sandbox.SandboxHost:
    return sandbox.SandboxHost(
        name=name,
        workdir=f"/nonexistent/{name}",
        address="127.0.0.150",
        ssh_port=22,
        user=sandbox.DEPLOY_USER,
        key="/k",
        known_hosts="/kh",
        init=init,
    )


def test_sandbox_inventory_names_the_hosts_service_manager() -> None:
    def manager(*hosts: sandbox.SandboxHost) -> str:
        group = sandbox.inventory(hosts)["all"]["children"]["isoloir_hosts"]
        return str(group["vars"]["isoloir_service_manager"])

    assert sandbox.DEFAULT_INIT == "systemd"
    assert manager(_host("a", "systemd")) == "systemd"
    assert manager(_host("a", "chroot")) == "sandbox"
    assert manager(_host("a", "systemd"), _host("b", "chroot")) == "sandbox"


def test_sandbox_refuses_an_unknown_init(tmp_path: Path) -> None:
    with pytest.raises(sandbox.SandboxError, match="invalid init"):
        sandbox.up("isoloir-x", init="sysvinit", work_dir=tmp_path, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_inventory_from_terraform_outputs() -> None:
    outputs = {
        "file_share_hosts": {
            "value": {
                "share-1": {
                    "address": "10.20.0.5",
                    "ssh_user": "admin",
                    "region": "eu-west-3",
                    "elections": ["b", "a"],
                }
            },
            "type": "map",
        }
    }
    inv = from_terraform(outputs, key_file="/k", deploy_sources=["10.20.0.0/24"])
    group = inv["all"]["children"][GROUP]
    assert group["hosts"] == {
        "share-1": {
            "ansible_host": "10.20.0.5",
            "ansible_user": "admin",
            "ansible_ssh_private_key_file": "/k",
            "mail_guard_listen_addresses": ["127.0.0.1", "10.20.0.5"],
            "isoloir_host_elections": ["a", "b"],
            "isoloir_host_account_audit": True,
            "isoloir_host_region": "eu-west-3",
        }
    }
    assert group["vars"]["isoloir_service_manager"] == "systemd"
    assert group["vars"]["isoloir_wait_for_host"] is True
    assert group["vars"]["hardening_deploy_sources"] == ["10.20.0.0/24"]
    with pytest.raises(InventoryError):
        from_terraform({"file_share_hosts": {"value": {"share-1": {}}}})
    with pytest.raises(InventoryError):
        from_terraform({})


@pytest.mark.integration
@pytest.mark.root
def test_teardown_stops_every_process_and_unmounts_everything(sandbox_factory, tmp_path):
    # sandbox_factory checks root and the tools; this host is stopped here, by hand.
    host = sandbox.up("isoloir-teardown", work_dir=tmp_path)
    assert host.init == "systemd" and host.init_pid
    try:
        stray = subprocess.Popen(
            ["chroot", str(host.root), "sh", "-c", "trap '' TERM; exec sleep 600"],
            stdin=subprocess.DEVNULL,
        )
        sshd_pid = host.machine_pid(int((host.root / "run/sshd.pid").read_text()))
        for _ in range(100):  # until the stray process has entered the tree
            if stray.pid in sandbox._pids_rooted_in(host.root):
                break
            time.sleep(0.05)
        assert sandbox._mounts_under(host.root)
        assert {host.init_pid, sshd_pid, stray.pid} <= set(sandbox._pids_rooted_in(host.root))
        assert Path(host.cgroup, "init.scope").is_dir()
    finally:
        sandbox.down(host)
    assert stray.wait(timeout=10) != 0
    for pid in (host.init_pid, sshd_pid):
        assert not os.path.exists(f"/proc/{pid}/root"), pid
    assert not sandbox._mounts_under(Path(host.workdir))
    assert not Path(host.workdir).exists()
    assert not Path(host.cgroup).exists()


@pytest.mark.integration
@pytest.mark.root
def test_a_boot_that_fails_leaves_nothing_behind(sandbox_factory, tmp_path, monkeypatch):
    booted: list[sandbox.SandboxHost] = []

    def not_running(host: sandbox.SandboxHost) -> None:
        booted.append(host)
        raise sandbox.SandboxError(f"{host.name}: systemd is 'degraded' (simulated)")

    monkeypatch.setattr(sandbox, "_wait_running", not_running)
    with pytest.raises(sandbox.SandboxError, match="simulated"):
        sandbox.up("isoloir-badboot", work_dir=tmp_path)
    (host,) = booted
    assert host.init_pid and host.cgroup
    assert not os.path.exists(f"/proc/{host.init_pid}/root")
    assert not sandbox._mounts_under(tmp_path)
    assert not Path(host.workdir).exists()
    assert not Path(host.cgroup).exists()
