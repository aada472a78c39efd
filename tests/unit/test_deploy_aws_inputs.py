"""The aws deploy's own logic, without AWS or a host: every input checked before
Terraform (D20), the vault password handed to ansible-playbook (N1), the
inventory's SSH handling and mail relay addresses (N7, N13, N5), the wait for
cloud-init in site.yml (N7), and the agents' first run read back (N8)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from tests.aws_policies import aws_ready_policies

from isoloir.controller import deploy, inventory
from isoloir.policy import load_policies

REPO = Path(__file__).resolve().parents[2]
PASSWORD = b"correct horse battery staple"


def _policies(tmp_path: Path) -> Path:
    """The example policies, filled in for TARGET=aws (an AMI and a subnet too)."""
    return aws_ready_policies(
        tmp_path, ami="ami-0123456789abcdef0", subnet="subnet-0123456789abcdef0"
    )


def _secret_names() -> list[str]:
    alerts = load_policies(REPO / "policies").baseline.alerts
    names = [Path(w.secret_file).name for w in alerts.webhooks]
    if alerts.email is not None:
        names.append(Path(alerts.email.credentials_file).name)
    assert names, "the example policies name secret files"
    return names


class Inputs:
    """A complete set of aws inputs in tmp_path, each breakable by a test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.policies = _policies(tmp_path)
        self.key = tmp_path / "keys" / "isoloir-deploy"
        self.key.parent.mkdir()
        self.key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n")
        self.key.chmod(0o600)
        self.key.with_name("isoloir-deploy.pub").write_text("ssh-ed25519 AAAAC3Nza test\n")
        self.vault_password = tmp_path / "vault-password"
        self.vault_password.write_bytes(PASSWORD + b"\n")
        self.vault_password.chmod(0o600)
        self.secrets = tmp_path / "secrets"
        self.secrets.mkdir()
        vault = VaultLib([("default", VaultSecret(PASSWORD))])
        for name in _secret_names():
            (self.secrets / name).write_bytes(vault.encrypt(b'{"password": "fake"}\n'))
        self.lines: list[str] = []

    def deployment(self) -> deploy.Deployment:
        return deploy.Deployment(
            target="aws",
            policies_dir=self.policies,
            run_dir=self.tmp / "run",
            key_file=str(self.key),
            secrets_dir=self.secrets,
            vault_password_file=str(self.vault_password),
            out=self.lines.append,
        )


def _other_password(i: Inputs) -> None:
    i.vault_password.write_bytes(b"not the password\n")


def _no_password(i: Inputs) -> None:
    i.vault_password.unlink()


def _secret_missing(i: Inputs) -> None:
    (i.secrets / _secret_names()[0]).unlink()


def _secret_in_clear(i: Inputs) -> None:
    (i.secrets / _secret_names()[0]).write_text('{"password": "in clear"}\n')


def _no_public_key(i: Inputs) -> None:
    i.key.with_name("isoloir-deploy.pub").unlink()


def _no_key(i: Inputs) -> None:
    i.key.unlink()


def _key_readable_by_others(i: Inputs) -> None:
    i.key.chmod(0o644)


BROKEN = [
    ("vault password wrong", _other_password, "the vault password file does not decrypt it"),
    ("vault password file missing", _no_password, "vault-password: not found"),
    ("secret file missing", _secret_missing, ": missing"),
    ("secret file in clear", _secret_in_clear, "not encrypted with ansible-vault"),
    ("deploy key without .pub", _no_public_key, "isoloir-deploy.pub"),
    ("deploy key missing", _no_key, "isoloir-deploy: not found"),
    ("deploy key readable by others", _key_readable_by_others, "readable by others"),
]


@pytest.mark.parametrize(("name", "breaks", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_missing_input_stops_the_deploy_before_preflight_and_terraform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, breaks: Any, words: str
) -> None:
    """D20: nothing reaches AWS (preflight, Terraform) when an input is missing."""
    calls: list[str] = []
    for step in ("step_preflight", "step_target", "step_terraform"):
        monkeypatch.setattr(deploy.Deployment, step, lambda self, s=step: calls.append(s))
    inputs = Inputs(tmp_path)
    breaks(inputs)
    assert inputs.deployment().run() == 2
    text = "\n".join(inputs.lines)
    assert words in text, text
    assert "deploy failed at step 'policies'" in text
    assert "nothing was changed" in text
    assert calls == []
    assert PASSWORD.decode() not in text and "fake" not in text


def test_policies_not_ready_for_aws_stop_the_deploy_before_preflight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example as shipped lacks what TARGET=aws needs (deployers, break-glass
    role, smarthost, bucket suffix): the deploy says so with file and line before
    anything reaches AWS."""
    calls: list[str] = []
    for step in ("step_preflight", "step_target", "step_terraform"):
        monkeypatch.setattr(deploy.Deployment, step, lambda self, s=step: calls.append(s))
    inputs = Inputs(tmp_path)
    (inputs.policies / "baseline.yml").write_text(
        (REPO / "policies" / "baseline.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    assert inputs.deployment().run() == 2
    text = "\n".join(inputs.lines)
    for field in (
        "aws.deployer_principals",
        "aws.break_glass_roles",
        "mail.upstream",
        "organisation.bucket_suffix",
    ):
        assert re.search(rf"baseline\.yml:\d+: {re.escape(field)}", text), (field, text)
    assert "deploy failed at step 'policies'" in text and calls == []


def test_complete_inputs_pass_and_name_the_decryptable_secrets(tmp_path: Path) -> None:
    inputs = Inputs(tmp_path)
    d = inputs.deployment()
    d.step_policies()
    assert d.secret_files is not None
    assert sorted(d.secret_files) == sorted(_secret_names())
    assert "vault password decrypts them" in "\n".join(inputs.lines)


def test_the_aws_playbook_command_carries_the_vault_password_file(tmp_path: Path) -> None:
    """N1: ansible-playbook gets the vault password file (absolute: it runs in playbooks/)."""
    inputs = Inputs(tmp_path)
    d = inputs.deployment()
    d.vault_password_file = os.path.relpath(inputs.vault_password)
    d.rendered = tmp_path / "rendered"
    d.inventory = tmp_path / "inventory.json"
    cmd = d.playbook_command(tmp_path / "extra.json")
    assert Path(cmd[0]).name == "ansible-playbook"
    at = cmd.index("--vault-password-file")
    assert cmd[at + 1] == str(inputs.vault_password.resolve())
    assert cmd[-1] == str(deploy.PLAYBOOK)
    # The local target writes clear secrets and needs none.
    d.target = "local"
    assert "--vault-password-file" not in d.playbook_command(tmp_path / "extra.json")


def _outputs() -> dict[str, Any]:
    return {
        "file_share_hosts": {
            "value": {
                "share-1": {"address": "10.20.0.5", "ssh_user": "isoloir-deploy", "elections": []}
            }
        }
    }


def _ssh_args(line: str) -> list[str]:
    import shlex

    return shlex.split(line)


def test_inventory_accepts_new_host_keys_into_the_run_directory(tmp_path: Path) -> None:
    """N7: no prompt, no blind trust: accept-new into the deploy's own known_hosts."""
    known = tmp_path / "run" / "known_hosts"
    inv = inventory.from_terraform(_outputs(), key_file="/k", known_hosts=known)
    group = inv["all"]["children"][inventory.GROUP]
    host = group["hosts"]["share-1"]
    args = _ssh_args(host["ansible_ssh_common_args"])
    assert "StrictHostKeyChecking=accept-new" in args
    assert f"UserKnownHostsFile={known}" in args
    assert not any("ProxyCommand" in a for a in args)
    assert group["vars"]["isoloir_wait_for_host"] is True
    # N5: the relay on loopback and the private address, never every interface
    assert host["mail_guard_listen_addresses"] == ["127.0.0.1", "10.20.0.5"]


def test_inventory_reaches_private_hosts_through_a_jump_host(tmp_path: Path) -> None:
    """N13: the jump host's key is handled like the hosts' (accept-new, same file)."""
    known = tmp_path / "known_hosts"
    inv = inventory.from_terraform(
        _outputs(), known_hosts=known, proxy_jump="admin@bastion.example:2222"
    )
    args = _ssh_args(
        inv["all"]["children"][inventory.GROUP]["hosts"]["share-1"]["ansible_ssh_common_args"]
    )
    (proxy,) = [a for a in args if a.startswith("ProxyCommand=")]
    jump = _ssh_args(proxy.removeprefix("ProxyCommand="))
    assert jump[0] == "ssh" and jump[-1] == "admin@bastion.example"
    assert "StrictHostKeyChecking=accept-new" in jump and f"UserKnownHostsFile={known}" in jump
    assert jump[jump.index("-p") + 1] == "2222" and jump[jump.index("-W") + 1] == "%h:%p"
    for bad in ("-oProxyCommand=sh", "host;reboot", "a b", "host:port"):
        with pytest.raises(inventory.InventoryError):
            inventory.from_terraform(_outputs(), known_hosts=known, proxy_jump=bad)


def test_site_waits_for_ssh_and_cloud_init_before_any_role() -> None:
    """N7: the first play waits (aws inventory only); the roles come after."""
    plays = yaml.safe_load((REPO / "playbooks" / "site.yml").read_text())
    first, *rest = plays
    assert "roles" not in first and rest and "roles" in rest[-1]
    tasks = {next(k for k in t if k.startswith("ansible.builtin.")): t for t in first["tasks"]}
    connection = tasks["ansible.builtin.wait_for_connection"]
    assert "default(300)" in connection["ansible.builtin.wait_for_connection"]["timeout"]
    marker = tasks["ansible.builtin.wait_for"]["ansible.builtin.wait_for"]
    assert marker["path"] == "/var/lib/cloud/instance/boot-finished"
    for task in tasks.values():
        assert task["when"] == "isoloir_wait_for_host | default(false) | bool"


def _fake_first_run(results: dict[str, Any]) -> Any:
    """subprocess.run standing for ansible-playbook first-run.yml: writes each
    host's result where the playbook would."""

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert Path(cmd[-1]) == deploy.FIRST_RUN_PLAYBOOK
        vars_file = Path(cmd[cmd.index("-e") + 1].removeprefix("@"))
        where = Path(json.loads(vars_file.read_text())["first_run_results"])
        for host, result in results.items():
            (where / f"{host}.json").write_text(json.dumps(result))
        return subprocess.CompletedProcess(cmd, 0, "PLAY RECAP\n", "")

    return run


def _agents_deployment(tmp_path: Path, hosts: list[str]) -> tuple[deploy.Deployment, list[str]]:
    lines: list[str] = []
    d = deploy.Deployment(
        target="aws", policies_dir=tmp_path, run_dir=tmp_path / "run", out=lines.append
    )
    d.run_dir.mkdir()
    d.inventory = tmp_path / "inventory.json"
    d.inventory.write_text(
        json.dumps({"all": {"children": {"isoloir_hosts": {"hosts": {h: {} for h in hosts}}}}})
    )
    return d, lines


def _status(**jobs: dict[str, Any] | None) -> str:
    return json.dumps(
        {"jobs": {name: {"running": False, "last": last} for name, last in jobs.items()}}
    )


def test_a_failed_first_run_fails_the_aws_deploy_with_its_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N8: the first cycle's exit code, last lines and failed jobs reach the deploy."""
    d, lines = _agents_deployment(tmp_path, ["share-1", "share-2"])
    monkeypatch.setattr(
        deploy.subprocess,
        "run",
        _fake_first_run(
            {
                "share-1": {
                    "rc": 1,
                    "stdout": ['{"event": "job incomplete", "job": "scan"}'],
                    "stderr": ["\x1b[2Jforged"],
                    "status": _status(
                        scan={"ok": False, "error": "incomplete", "findings": 0},
                        identity={"ok": True, "error": None, "findings": 2},
                    ),
                }
                # share-2: no result came back
            }
        ),
    )
    with pytest.raises(deploy.StepError) as failed:
        d.step_agents()
    message = str(failed.value)
    assert "share-1: isoloir run --once exited 1, job scan FAILED (incomplete)" in message
    assert "share-2: no result read back" in message
    text = "\n".join(lines)
    assert '| {"event": "job incomplete", "job": "scan"}' in text
    assert "share-1: job identity: ok, 2 finding(s)" in text
    assert "\x1b" not in text  # a host's line cannot drive the operator's terminal
    assert d.agent_results == {"share-1": 1, "share-2": -1}


def test_a_clean_first_run_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d, lines = _agents_deployment(tmp_path, ["share-1"])
    ok = {"ok": True, "error": None, "findings": 0}
    monkeypatch.setattr(
        deploy.subprocess,
        "run",
        _fake_first_run(
            {"share-1": {"rc": 0, "stdout": [], "stderr": [], "status": _status(scan=ok)}}
        ),
    )
    d.step_agents()
    assert d.agent_results == {"share-1": 0} and not d.agent_errors
    assert "share-1: job scan: ok, 0 finding(s)" in "\n".join(lines)


def test_the_first_run_commands_run_as_the_agents_user_with_the_units_environment(
    tmp_path: Path,
) -> None:
    d, _ = _agents_deployment(tmp_path, [])
    v = d.first_run_vars(tmp_path)
    run = v["first_run_argv"]
    assert run[:2] == ["sh", "-c"] and run[4] == deploy.AGENT_ENV_FILE
    setpriv = run.index("setpriv")
    assert "--reuid=isoloir" in run[setpriv:]
    assert run[-3:] == [f"{deploy.AGENT_VENV}/bin/isoloir", "run", "--once"]
    unit = (
        REPO / "playbooks/roles/agents/templates/etc/systemd/system/isoloir-agent.service.j2"
    ).read_text()
    for setting in deploy.AGENT_UNIT_ENV:
        key, value = setting.split("=", 1)
        rendered = re.sub(r"\{\{ agents_(\w+)_dir \}\}", lambda m: f"<{m.group(1)}>", unit)
        assert f"Environment={key}=" in rendered, key
    assert v["first_run_status_argv"][-2:] == ["status", "--json"]
