"""`isoloir deploy`: from the policies to hardened hosts and running agents.

Steps, each announced, each idempotent so that a failed deploy is resumed by
running it again:

1. policies   validate and render (nothing else reads the YAML); aws: every
              region holding elections has an AMI and a subnet in hosts.aws, and
              every other input is checked (the deploy key and its .pub, the
              secret files, the vault password that decrypts them), so that a
              missing one stops the deploy before anything paid is created
2. preflight  aws only: `isoloir preflight`'s read-only checks of the account
3. target     local only: start the emulator, the SMTP sink, the sandbox host
4. terraform  init, plan (summary shown), apply; skipped altogether when
              nothing Terraform reads changed since the last successful apply
              (infra/inputs.py; ISOLOIR_TF_REPLAN=1 forces the plan)
5. inventory  from the sandbox (local) or the Terraform outputs (aws: host keys
              accepted on first sight into the run directory's known_hosts,
              optional ProxyJump host)
6. ansible    converge the hosts (playbooks/site.yml; aws: it first waits for
              SSH and for cloud-init's end of first boot, and decrypts the
              vaulted secrets with the vault password file)
7. agents     run every agent job once on each host as the agents' user and
              read the result back (exit code, last lines, `isoloir status`);
              a failed first run fails the deploy
8. summary    what exists, where, what to do next
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isoloir.policy import PolicyError, load_policies
from isoloir.policy import render as policy_render
from isoloir.policy.model import Policies

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "playbooks" / "site.yml"
FIRST_RUN_PLAYBOOK = REPO / "playbooks" / "first-run.yml"
AGENT_VENV = "/opt/isoloir/venv"
AGENT_CONFIG_DIR = "/etc/isoloir"
AGENT_STATE_DIR = "/var/lib/isoloir"
# What the agents' unit (isoloir-agent.service) sets besides its EnvironmentFile.
AGENT_UNIT_ENV = (
    f"ISOLOIR_CONFIG={AGENT_CONFIG_DIR}/agent.json",
    f"ISOLOIR_STATE_DIR={AGENT_STATE_DIR}",
    f"ISOLOIR_SECRETS_DIR={AGENT_CONFIG_DIR}/secrets",
    f"TMPDIR={AGENT_STATE_DIR}/tmp",  # noqa: S108 - the agents' own, not /tmp
)
# The unit's EnvironmentFile, read the same way before the first run (aws target).
AGENT_ENV_FILE = f"{AGENT_CONFIG_DIR}/agent.env"
AGENT_TAIL_LINES = 15
HOST_CA_PATH = "/etc/isoloir/emulator-ca.pem"
VAULT_HEADER = b"$ANSIBLE_VAULT;"
# The agents as their own user with the one capability their unit grants
# (CAP_FOWNER: `chmod o-rwx` on a share file that a member owns).
AGENT_USER_ARGV = (
    "setpriv",
    "--reuid=isoloir",
    "--regid=isoloir",
    "--init-groups",
    "--inh-caps=+fowner",
    "--ambient-caps=+fowner",
    "--",
)
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")

# Terraform lines worth a console line during a deploy (the rest is in terraform.log)
_TERRAFORM_SHOWN = re.compile(
    r"(: (Creation|Modifications|Destruction) complete after |^Apply complete!|"
    r"^\s*(Error|Warning): |^No changes\.)"
)


class StepError(RuntimeError):
    """A step failed; `state` says what it left behind."""

    def __init__(self, message: str, state: str = "") -> None:
        super().__init__(message)
        self.state = state


@dataclass
class Deployment:
    target: str
    policies_dir: Path
    run_dir: Path
    key_file: str | None = None
    secrets_dir: Path = REPO / "secrets"
    vault_password_file: str | None = None
    run_agents: bool = True
    run_preflight: bool = True
    # aws target: extra Terraform variable files (after the rendered ones) and
    # the SSH jump host the inventory reaches the private hosts through.
    var_files: list[Path] = field(default_factory=list)
    proxy_jump: str | None = None
    out: Callable[[str], None] = print
    emulator: Any = None  # local target: a running Emulator to use instead of starting one
    policies: Policies | None = None
    rendered: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    inventory: Path | None = None
    terraform_changes: int | None = None
    terraform_skipped: bool = False  # inputs unchanged since the last apply (N9)
    terraform_outputs: dict[str, Any] = field(default_factory=dict)
    ansible_changed: dict[str, int] = field(default_factory=dict)
    agent_results: dict[str, int] = field(default_factory=dict)
    agent_errors: dict[str, list[str]] = field(default_factory=dict)
    secret_files: dict[str, str] | None = None

    # ------------------------------------------------------------- steps
    def step_policies(self) -> None:
        try:
            self.policies = load_policies(self.policies_dir, target=self.target)
        except PolicyError as exc:
            for problem in exc.problems:
                self.out(f"    {problem}")
            raise StepError(
                f"{len(exc.problems)} problem(s) in {self.policies_dir}", "nothing was changed"
            ) from None
        if self.target == "aws":
            from isoloir.controller.preflight import missing_host_settings

            missing = missing_host_settings(self.policies)
            for line in missing:
                self.out(f"    {line}")
            if missing:
                raise StepError(
                    "the file-share hosts need an AMI and a private subnet per region "
                    "holding elections (hosts.aws in policies/baseline.yml)",
                    "nothing was changed",
                )
            self.check_inputs()
        self.rendered = self.run_dir / "rendered"
        policy_render.write(self.policies, self.rendered)
        self.out(f"    {len(self.policies.elections)} election(s); rendered into {self.rendered}")

    def step_preflight(self) -> None:
        if self.target != "aws":
            self.out("    skipped (local target)")
            return
        if not self.run_preflight:
            self.out("    skipped (--no-preflight)")
            return
        from isoloir.controller import preflight

        assert self.policies is not None
        try:
            rows = preflight.preflight(self.policies)
        except preflight.BadInput as exc:
            raise StepError(str(exc), "nothing was changed") from None
        for line in preflight.table(rows):
            self.out(f"    {line}")
        if preflight.exit_code(rows) != preflight.EXIT_OK:
            raise StepError(
                f"preflight: {preflight.summary(rows)} (each FAIL row says how)",
                "nothing was changed; `isoloir preflight --target aws` re-runs the checks",
            )

    def step_target(self) -> None:
        if self.target != "local":
            self.out(
                "    aws target: using the AWS credentials of this shell "
                f"(profile {os.environ.get('AWS_PROFILE', 'default')})"
            )
            return
        from isoloir.controller.localtarget import LocalTarget

        local = LocalTarget(self.run_dir / "local")
        state = local.up(log=lambda msg: self.out(f"    {msg}"), emulator=self.emulator)
        self.env = {
            **local.env(),
            "ISOLOIR_SMTP_SINK": f"127.0.0.1:{state['smtp']['port']}",
            "ISOLOIR_WEBHOOK_SINK": f"http://127.0.0.1:{state['smtp']['webhook_port']}/",
        }
        host = local.host()
        self.out(
            f"    emulator {state['emulator']['endpoint']}, sandbox host "
            f"{host.address}:{host.ssh_port}, SMTP sink 127.0.0.1:{state['smtp']['port']}"
        )

    def step_terraform(self) -> None:
        from isoloir.controller.emulator import Emulator
        from isoloir.controller.infra import roots, targets
        from isoloir.controller.infra.inputs import converge

        assert self.rendered is not None
        tfvars = targets.load_tfvars(self.rendered)

        # Terraform's whole output goes to a file; the console gets the plan's
        # summary, one line per resource as the apply completes it, and errors.
        log_path = self.run_dir / "terraform.log"
        self.out(f"    Terraform's full output: {log_path}")
        log_file = log_path.open("a", encoding="utf-8")
        log_file.write(f"\n# isoloir deploy, {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n")

        def log(line: str) -> None:
            log_file.write(line + "\n")
            if _TERRAFORM_SHOWN.search(line):
                self.out(f"    {line.strip()}")

        if self.target == "local":
            emulator = Emulator(
                endpoint=self.env["ISOLOIR_AWS_ENDPOINT"], ca_bundle=Path(self.env["AWS_CA_BUNDLE"])
            )
            # the sandbox host plays the file-share host: no EC2 instance locally
            target = targets.local_target(
                self.run_dir, tfvars, log, create_hosts=False, emulator=emulator
            )
        else:
            target = targets.aws_target(
                self.run_dir, None, deploy_public_key=self._deploy_public_key()
            )
        tf = target.terraform(log=log)
        var_files = [self.rendered / targets.TFVARS, *target.var_files]
        if self.target == "aws":
            var_files += [Path(f).expanduser().resolve() for f in self.var_files]
        plan_file = target.state_dir / "tfplan"
        # N9: nothing Terraform reads has changed since the last successful
        # apply: no init, no plan, no refresh (infra/inputs.py says what counts).

        def show(line: str) -> None:
            log_file.write(f"# {line}\n")
            self.out(f"    {line}")

        try:
            chosen = roots.layout()
            roots.refuse_mixed_layouts(chosen, target.state_dir)
        except ValueError as exc:
            log_file.close()
            raise StepError(str(exc), "nothing was planned or applied") from exc
        try:
            done: Any
            if chosen == "split":
                # ISOLOIR_TF_LAYOUT=split: infra/roots/, one line per root instance
                done = roots.split_layout(target, log=log, show=show).converge(var_files)
            else:
                done = converge(tf, var_files, plan_file, show=show)
            if self.target == "local":
                targets.set_account_public_access_block(target.env)
        except Exception as exc:
            for line in getattr(exc, "tail", [])[-20:]:
                self.out(f"    | {line}")
            raise StepError(
                f"{exc} (full output in {log_path})",
                "Terraform state is consistent with what was applied; "
                "a new plan shows what is left",
            ) from exc
        finally:
            log_file.close()
        self.terraform_outputs = done.outputs
        self.terraform_changes = done.changes
        self.terraform_skipped = done.skipped

    def check_inputs(self) -> None:
        """aws target: every input of the later steps, before Terraform creates
        anything paid (D20): the deploy key and its public half, the secret
        files the policies name (present, ansible-vault encrypted), the vault
        password file (present, and it decrypts each of them)."""
        problems: list[str] = []
        if not self.key_file:
            problems.append("no --key-file: the SSH private key Ansible logs in with")
        else:
            key = Path(self.key_file).expanduser()
            if not key.is_file():
                problems.append(f"deploy key {key}: not found (or not a regular file)")
            elif key.stat().st_mode & 0o077:
                problems.append(
                    f"deploy key {key}: readable by others; ssh refuses it (chmod 600 {key})"
                )
            try:
                self._deploy_public_key()
            except StepError as exc:
                problems.append(str(exc))
        files, secret_problems = self._secret_files()
        problems += secret_problems
        if not secret_problems:
            problems += self._vault_problems(files)
        if problems:
            for line in problems:
                self.out(f"    {line}")
            raise StepError(
                f"{len(problems)} input(s) missing or unusable (listed above)",
                "nothing was changed: no cloud resource exists yet",
            )
        self.secret_files = files
        self.out(
            f"    inputs: deploy key, {len(files)} secret file(s)"
            + (", vault password decrypts them" if files else "")
        )

    def _vault_problems(self, files: dict[str, str]) -> list[str]:
        """Why the vault password file cannot decrypt the secret files ([] if it can)."""
        if not files:
            return []
        if not self.vault_password_file:
            return [
                "the secret files are encrypted: give --vault-password-file "
                "(make deploy ... VAULT_PASSWORD_FILE=...)"
            ]
        password = Path(self.vault_password_file).expanduser()
        if not password.is_file():
            return [f"vault password file {password}: not found (or not a regular file)"]
        # Ansible's own reading of the file (a script when executable), as
        # ansible-playbook will read it.
        from ansible.parsing.dataloader import DataLoader
        from ansible.parsing.vault import VaultLib, get_file_vault_secret

        try:
            secret = get_file_vault_secret(
                filename=str(password), vault_id="default", loader=DataLoader()
            )
            secret.load()
        except Exception as exc:  # noqa: BLE001 - any failure: the file is unusable
            return [f"vault password file {password}: cannot be read ({type(exc).__name__})"]
        vault = VaultLib([("default", secret)])
        problems = []
        for source in files.values():
            try:
                vault.decrypt(Path(source).read_bytes())
            except Exception:  # noqa: BLE001 - the message may quote the file; name it only
                problems.append(f"{source}: the vault password file does not decrypt it")
        return problems

    def _deploy_public_key(self) -> str:
        """The public half of `--key-file` (`<key>.pub`), for cloud-init on new hosts."""
        if not self.key_file:
            return ""
        key = Path(self.key_file).expanduser()
        pub = key.with_name(key.name + ".pub")
        try:
            return pub.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StepError(
                f"cannot read the deploy key's public half {pub}: {exc.strerror} "
                "(give --key-file a key whose .pub sits beside it)",
                "nothing applied",
            ) from exc

    def step_inventory(self) -> None:
        from isoloir.controller import inventory, sandbox
        from isoloir.controller.localtarget import LocalTarget

        if self.target == "local":
            data = sandbox.inventory([LocalTarget(self.run_dir / "local").host()])
        else:
            outputs = {k: {"value": v} for k, v in self.terraform_outputs.items()}
            data = inventory.from_terraform(
                outputs,
                key_file=str(Path(self.key_file).expanduser().resolve()) if self.key_file else None,
                known_hosts=self.run_dir / "known_hosts",
                proxy_jump=self.proxy_jump,
                account_region=self.policies.baseline.regions.default if self.policies else None,
            )
        self.inventory = self.run_dir / "inventory.json"
        self.inventory.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        hosts = data["all"]["children"][inventory.GROUP]["hosts"]
        self.out(f"    {len(hosts)} host(s): {', '.join(sorted(hosts))} -> {self.inventory}")
        if not hosts:
            raise StepError(
                "no file-share host in the inventory",
                "the cloud resources exist; no host was converged",
            )

    def _extra_vars(self) -> Path:
        from isoloir.controller import inventory

        assert self.rendered is not None
        wheelhouse = inventory.build_wheelhouse(self.run_dir / "wheelhouse")
        extra: dict[str, Any] = {
            "agents_wheelhouse": str(wheelhouse),
            "agents_config_src": str(self.rendered / policy_render.AGENT_CONFIG),
        }
        if self.target == "local":
            # The agents on the sandbox host reach the emulator and the SMTP sink on loopback.
            extra["agents_environment"] = {
                "ISOLOIR_AWS_ENDPOINT": self.env["ISOLOIR_AWS_ENDPOINT"],
                "AWS_CA_BUNDLE": HOST_CA_PATH,
                "AWS_ACCESS_KEY_ID": self.env["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": self.env["AWS_SECRET_ACCESS_KEY"],
                "AWS_DEFAULT_REGION": self.env["AWS_DEFAULT_REGION"],
                "AWS_EC2_METADATA_DISABLED": "true",
                "ISOLOIR_SMTP_SINK": self.env["ISOLOIR_SMTP_SINK"],
                "ISOLOIR_WEBHOOK_SINK": self.env["ISOLOIR_WEBHOOK_SINK"],
            }
            extra["agents_ca_bundle_src"] = self.env["AWS_CA_BUNDLE"]
            # The mail relay hands accepted mail to the same sink, never to an MX.
            extra["mail_guard_relayhost"] = "[{}]:{}".format(
                *self.env["ISOLOIR_SMTP_SINK"].rsplit(":", 1)
            )
            extra["mail_guard_upstream_tls_level"] = "may"
        if self.secret_files is None:
            files, problems = self._secret_files()
            if problems:
                raise StepError("; ".join(problems), "cloud resources applied; no host was changed")
            self.secret_files = files
        extra["agents_secret_files"] = self.secret_files
        path = self.run_dir / "deploy-vars.json"
        path.write_text(json.dumps(extra, indent=2, sort_keys=True) + "\n")
        os.chmod(path, 0o600)
        return path

    def _secret_files(self) -> tuple[dict[str, str], list[str]]:
        """Secret files the policies name under /etc/isoloir/secrets -> controller
        path, and the problems found with them.

        aws target: taken from the secrets directory (ansible-vault encrypted
        files are decrypted by Ansible on the way). Local target: generated
        once in the run directory (the sinks need no credentials).
        """
        assert self.policies is not None
        alerts = self.policies.baseline.alerts
        wanted = [w.secret_file for w in alerts.webhooks]
        if alerts.email is not None:
            wanted.append(alerts.email.credentials_file)
        found: dict[str, str] = {}
        problems: list[str] = []
        for target_path in wanted:
            target = Path(target_path)
            if str(target.parent) != "/etc/isoloir/secrets":
                continue
            if self.target == "local":
                source = self.run_dir / "secrets" / target.name
                if not source.exists():
                    source.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    secret = os.urandom(32).hex()
                    text = (
                        json.dumps({"username": "local", "password": secret})
                        if target.suffix == ".json"
                        else secret
                    )
                    source.write_text(text + "\n")
                    os.chmod(source, 0o600)
            else:
                source = (self.secrets_dir / target.name).resolve()
                if not source.is_file():
                    problems.append(
                        f"secret file {source}: missing (README: secrets with ansible-vault)"
                    )
                    continue
                with source.open("rb") as fh:
                    if fh.read(len(VAULT_HEADER)) != VAULT_HEADER:
                        problems.append(
                            f"secret file {source}: not encrypted with ansible-vault "
                            "(ansible-vault encrypt FILE)"
                        )
                        continue
            found[target.name] = str(source)
        return found, problems

    def playbook_command(self, extra: Path) -> list[str]:
        """ansible-playbook's command line for site.yml."""
        assert self.rendered is not None and self.inventory is not None
        cmd = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(self.inventory),
            "-e",
            f"@{self.rendered / policy_render.ANSIBLE_VARS}",
            "-e",
            f"@{extra}",
        ]
        if self.target != "local" and self.vault_password_file:
            # The vaulted secret files are decrypted by the copy on their way to
            # the host (N1); absolute: ansible-playbook runs in playbooks/.
            password = Path(self.vault_password_file).expanduser().resolve()
            cmd += ["--vault-password-file", str(password)]
        return [*cmd, str(PLAYBOOK)]

    def step_ansible(self) -> None:
        assert self.rendered is not None and self.inventory is not None
        extra = self._extra_vars()
        cmd = self.playbook_command(extra)
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(PLAYBOOK.parent / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
        }
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=str(PLAYBOOK.parent),
        )
        assert proc.stdout is not None
        in_recap = False
        for line in proc.stdout:
            line = line.rstrip("\n")
            if (
                line.startswith(("TASK [", "PLAY [", "PLAY RECAP"))
                or in_recap
                or line.startswith(("fatal:", "failed:", "changed:"))
                or "ERROR" in line
            ):
                self.out(f"    {line}")
            in_recap = in_recap or line.startswith("PLAY RECAP")
            match = _RECAP.match(line)
            if match:
                host, _ok, changed, unreachable, failed = match.groups()
                self.ansible_changed[host] = int(changed)
                if int(unreachable) or int(failed):
                    in_recap = True
        if proc.wait() != 0:
            raise StepError(
                f"ansible-playbook exited with {proc.returncode}",
                "cloud resources applied; hosts partly converged",
            )

    def step_agents(self) -> None:
        if not self.run_agents:
            self.out("    skipped (--no-agents)")
            return
        if self.target == "local":
            from isoloir.controller.localtarget import LocalTarget

            host = LocalTarget(self.run_dir / "local").host()
            proc = host.chroot(
                *AGENT_USER_ARGV,
                "env",
                *self._agent_env_args(),
                f"{AGENT_VENV}/bin/isoloir",
                "run",
                "--once",
                check=False,
            )
            for line in (proc.stdout + proc.stderr).splitlines()[-15:]:
                self.out(f"    {line}")
            self.agent_results[host.name] = proc.returncode
        else:
            self._first_run_over_ansible()
        failed = {h: rc for h, rc in self.agent_results.items() if rc not in (0, 1)}
        if self.target != "local":
            # aws: any failure of the first cycle is the deploy's (N8): a job that
            # failed or could not read everything, or no result read back.
            failed = {h: rc for h, rc in self.agent_results.items() if rc != 0}
            failed.update({h: self.agent_results.get(h, -1) for h in self.agent_errors})
        if failed:
            details = "; ".join(
                f"{h}: " + (", ".join(self.agent_errors.get(h, [])) or f"exit {rc}")
                for h, rc in sorted(failed.items())
            )
            raise StepError(
                f"the agents' first run failed on {details}",
                "hosts converged; agents installed but their first run failed "
                "(`isoloir status` and `journalctl -u isoloir-agent` on the host)",
            )

    def first_run_vars(self, results: Path) -> dict[str, Any]:
        """Variables of playbooks/first-run.yml: the two commands it runs on each
        host as the agents' user, with the unit's environment (its
        EnvironmentFile sourced first), and where the results come back."""
        with_unit_env = [
            "sh",
            "-c",
            'set -a; if [ -r "$1" ]; then . "$1"; fi; shift; exec "$@"',
            "isoloir-first-run",
            AGENT_ENV_FILE,
            *AGENT_USER_ARGV,
            "env",
            *AGENT_UNIT_ENV,
            f"{AGENT_VENV}/bin/isoloir",
        ]
        return {
            "first_run_argv": [*with_unit_env, "run", "--once"],
            "first_run_status_argv": [*with_unit_env, "status", "--json"],
            "first_run_results": str(results),
            "first_run_tail_lines": AGENT_TAIL_LINES,
        }

    def _first_run_over_ansible(self) -> None:
        """aws target: the agents' first cycle on each host, read back (N8)."""
        assert self.inventory is not None
        results = self.run_dir / "first-run"
        shutil.rmtree(results, ignore_errors=True)
        results.mkdir(mode=0o700, parents=True)
        vars_path = self.run_dir / "first-run-vars.json"
        vars_path.write_text(json.dumps(self.first_run_vars(results), indent=2) + "\n")
        cmd = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(self.inventory),
            "-e",
            f"@{vars_path}",
            str(FIRST_RUN_PLAYBOOK),
        ]
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(PLAYBOOK.parent / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
        }
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=str(PLAYBOOK.parent), check=False
        )
        hosts = json.loads(self.inventory.read_text())["all"]["children"]
        for host in sorted(hosts.get("isoloir_hosts", {}).get("hosts", {})):
            self._read_first_run(host, results / f"{host}.json", proc)

    def _read_first_run(
        self, host: str, path: Path, proc: subprocess.CompletedProcess[str]
    ) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rc = int(data["rc"])
        except (OSError, ValueError, KeyError, TypeError):
            self.out(f"    {host}: no result read back from the host")
            for line in (proc.stdout + proc.stderr).splitlines()[-AGENT_TAIL_LINES:]:
                self.out(f"      | {line}")
            self.agent_results[host] = -1
            self.agent_errors[host] = ["no result read back (ansible-playbook first-run.yml)"]
            return
        self.agent_results[host] = rc
        self.out(f"    {host}: isoloir run --once exited {rc}; its last lines:")
        for line in [*data.get("stdout", []), *data.get("stderr", [])][-AGENT_TAIL_LINES:]:
            self.out(f"      | {_one_line(str(line))}")
        errors: list[str] = [] if rc == 0 else [f"isoloir run --once exited {rc}"]
        try:
            status = json.loads(str(data.get("status", "")))
            jobs = status["jobs"]
        except (ValueError, KeyError, TypeError):
            self.out(f"    {host}: `isoloir status --json` gave no status")
            errors.append("no `isoloir status`")
            jobs = {}
        for name, job in sorted(jobs.items()):
            last = job.get("last") if isinstance(job, dict) else None
            if not isinstance(last, dict):
                state = "never run"
            elif last.get("ok"):
                state = f"ok, {last.get('findings')} finding(s)"
            else:
                state = f"FAILED ({_one_line(str(last.get('error')))})"
                errors.append(f"job {name} {state}")
            self.out(f"    {host}: job {_one_line(str(name))}: {state}")
        if errors:
            self.agent_errors[host] = errors

    def _agent_env_args(self) -> list[str]:
        if self.target != "local":
            return []
        env = {
            "ISOLOIR_CONFIG": "/etc/isoloir/agent.json",
            "ISOLOIR_STATE_DIR": "/var/lib/isoloir",
            "ISOLOIR_AWS_ENDPOINT": self.env["ISOLOIR_AWS_ENDPOINT"],
            "AWS_CA_BUNDLE": HOST_CA_PATH,
            "AWS_ACCESS_KEY_ID": self.env["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": self.env["AWS_SECRET_ACCESS_KEY"],
            "AWS_DEFAULT_REGION": self.env["AWS_DEFAULT_REGION"],
            "AWS_EC2_METADATA_DISABLED": "true",
            "ISOLOIR_SMTP_SINK": self.env["ISOLOIR_SMTP_SINK"],
            "ISOLOIR_WEBHOOK_SINK": self.env["ISOLOIR_WEBHOOK_SINK"],
        }
        extra = os.environ.get("ISOLOIR_NOW")
        if extra:
            env["ISOLOIR_NOW"] = extra
        return [f"{k}={v}" for k, v in sorted(env.items())]

    def step_summary(self) -> None:
        assert self.policies is not None
        tf = (
            "skipped, inputs unchanged since the last apply"
            if self.terraform_skipped
            else "no change"
            if self.terraform_changes == 0
            else f"{self.terraform_changes} change(s) applied"
        )
        ansible = ", ".join(f"{h}: changed={c}" for h, c in sorted(self.ansible_changed.items()))
        self.out(f"    terraform: {tf}")
        self.out(f"    ansible:   {ansible or 'not run'}")
        for e in self.policies.elections:
            hold = f", LEGAL HOLD: {e.legal_hold_reason}" if e.legal_hold else ""
            self.out(
                f"    election {e.id}: bucket {e.bucket_name} ({e.region}), share "
                f"{e.share_path}, retention due {e.retention_due}{hold}"
            )
        self.out(
            "    next: enrol the administrators' TOTP (docs/hosts.md), check "
            "`isoloir status` on the hosts, keep policies/ under review"
        )

    STEPS: tuple[tuple[str, str], ...] = (
        ("policies", "step_policies"),
        ("preflight", "step_preflight"),
        ("target", "step_target"),
        ("terraform", "step_terraform"),
        ("inventory", "step_inventory"),
        ("ansible", "step_ansible"),
        ("agents", "step_agents"),
        ("summary", "step_summary"),
    )

    def run(self) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        total = len(self.STEPS)
        for index, (name, method) in enumerate(self.STEPS, start=1):
            started = time.monotonic()
            self.out(f"==> [{index}/{total}] {name}")
            try:
                getattr(self, method)()
            except StepError as exc:
                return self._failed(name, str(exc), exc.state)
            except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
                return self._failed(name, f"{type(exc).__name__}: {exc}", "")
            self.out(f"    done in {time.monotonic() - started:.1f}s")
        return 0

    def _failed(self, name: str, message: str, state: str) -> int:
        self.out(f"deploy failed at step '{name}': {message}")
        if state:
            self.out(f"state left: {state}")
        self.out(
            f"to resume: fix the cause, then run `make deploy TARGET={self.target}` again "
            "(every step is idempotent)"
        )
        return 2


def _one_line(text: str) -> str:
    """A line from a host, shown on the controller: no control character."""
    return "".join(c if c.isprintable() else "?" for c in text)[:300]


def cmd_deploy(args: argparse.Namespace) -> int:
    if args.target == "aws" and not args.key_file:
        print(
            "isoloir deploy: --target aws needs --key-file (make deploy TARGET=aws "
            "KEY_FILE=~/.ssh/isoloir-deploy): the private key Ansible logs in with; its "
            ".pub half is given to cloud-init on new hosts. Nothing was done.",
            file=sys.stderr,
        )
        return 2
    run_dir = Path(args.run_dir or f".run/{args.target}")
    deployment = Deployment(
        target=args.target,
        policies_dir=Path(args.policies),
        run_dir=run_dir.resolve(),
        key_file=args.key_file,
        secrets_dir=Path(args.secrets_dir),
        vault_password_file=args.vault_password_file,
        run_agents=not args.no_agents,
        run_preflight=not args.no_preflight,
        var_files=[Path(f) for f in args.var_file],
        proxy_jump=args.proxy_jump,
        out=lambda line: print(line, flush=True),
    )
    return deployment.run()


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("deploy", help="policies -> terraform -> ansible -> agents")
    p.add_argument("--target", choices=("local", "aws"), default="local")
    p.add_argument("--policies", default="policies")
    p.add_argument("--run-dir", help="working directory (default .run/<target>)")
    p.add_argument("--key-file", help="aws target: SSH private key for the deploy user")
    p.add_argument("--no-agents", action="store_true", help="do not run the agents once")
    p.add_argument(
        "--no-preflight",
        action="store_true",
        help="aws target: skip `isoloir preflight` (only once every FAIL row left is one "
        "you checked by hand, e.g. egress through a proxy)",
    )
    p.add_argument(
        "--secrets-dir",
        default=str(REPO / "secrets"),
        help="aws target: secret files (ansible-vault encrypted), named as in the "
        "policies (default: secrets/)",
    )
    p.add_argument("--vault-password-file", help="ansible-vault password file for the secrets")
    p.add_argument(
        "--var-file",
        action="append",
        default=[],
        help="aws target: an extra Terraform variable file (JSON or HCL), after the "
        "rendered ones; repeatable",
    )
    p.add_argument(
        "--proxy-jump",
        help="aws target: reach the private hosts through this SSH jump host "
        "([user@]host[:port]); its host key is accepted on first sight too",
    )
    p.set_defaults(func=cmd_deploy)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="isoloir")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
