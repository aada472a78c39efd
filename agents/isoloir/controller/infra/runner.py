"""A thin wrapper around the Terraform CLI, and the targets it runs against.

Why not python-terraform (once a declared dependency, now dropped): its last
release (0.10.1) predates Terraform 1.x. `destroy()` always passes `-force`, a flag Terraform
0.15 removed, so it fails; it either captures the whole output until the
command ends or hands the terminal over, never both, so progress cannot be
streamed and summarised; it reads the environment only from `os.environ`, so
the emulator's settings would leak into the calling process; and it treats
`plan -detailed-exitcode`'s 2 ("changes present") as a failure. The few
commands needed here are plain `subprocess` calls (docs/infra.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROVIDER_GLOB = "terraform-provider-aws*"
MIRROR_SEARCH_ROOTS = (
    "/opt",
    "/usr/local/share",
    "/usr/share",
    "/var/lib",
    "~/.terraform.d",
    "~/.local/share",
)
_MIRROR_MAX_DEPTH = 8
# Lifecycle configurations each wait ~55 s (the provider's waiter floor); with
# Terraform's default of 10 concurrent operations, 20 elections take 3 rounds.
APPLY_PARALLELISM = 32
_NOISY = (": Still creating", ": Still destroying", ": Still modifying", ": Still reading")

Log = Callable[[str], None]


class TerraformError(RuntimeError):
    """A Terraform command failed (`hint`: what the operator should do)."""

    def __init__(self, args: Sequence[str], code: int, tail: Sequence[str], hint: str = "") -> None:
        self.code = code
        self.tail = list(tail)
        self.hint = hint
        text = f"terraform {' '.join(args[:1])} failed with exit code {code}"
        super().__init__(f"{text}: {hint}" if hint else text)


# ------------------------------------------------------------ backend and lock file

# `ISOLOIR_TF_LOCKFILE=update` lets `init` record the hashes of this machine's
# platform in infra/.terraform.lock.hcl; the default keeps the committed file
# read-only, so an unreviewed provider can never slip in.
LOCKFILE_ENV = "ISOLOIR_TF_LOCKFILE"
LOCKFILE_MODES = ("readonly", "update")
# `ISOLOIR_TF_BACKEND_CONFIG=FILE` names the partial backend configuration of a
# non-local backend (default: infra/backend.aws.hcl when it exists).
BACKEND_CONFIG_ENV = "ISOLOIR_TF_BACKEND_CONFIG"
BACKEND_CONFIG_FILE = "backend.aws.hcl"
_BACKEND_RE = re.compile(r'^\s*backend\s+"([A-Za-z0-9_]+)"', re.MULTILINE)
_LOCK_MISMATCH = (
    "doesn't match any of the checksums previously recorded in the dependency lock file",
    "the current platform",
    "cannot record",
    "locked provider",
)
LOCK_HINT = (
    "the provider's hash for this platform is not in infra/.terraform.lock.hcl, and init runs "
    "with -lockfile=readonly. Record every platform once, with network access: `terraform "
    "-chdir=infra providers lock -platform=linux_amd64 -platform=linux_arm64 "
    "-platform=darwin_amd64 -platform=darwin_arm64 -platform=windows_amd64`, and commit the "
    f"file; or set {LOCKFILE_ENV}=update to let init record this platform (docs/infra.md)"
)


def lockfile_mode(env: Mapping[str, str] | None = None) -> str:
    mode = (env if env is not None else os.environ).get(LOCKFILE_ENV, "readonly") or "readonly"
    if mode not in LOCKFILE_MODES:
        raise ValueError(f"{LOCKFILE_ENV}={mode!r}: expected one of {', '.join(LOCKFILE_MODES)}")
    return mode


def declared_backend(infra_dir: Path) -> str:
    """The backend type the configuration declares ("local" when none)."""
    found: set[str] = set()
    for path in sorted(infra_dir.glob("*.tf")):
        found.update(_BACKEND_RE.findall(path.read_text(encoding="utf-8")))
    if len(found) > 1:
        raise ValueError(f"{infra_dir}: several backends declared ({', '.join(sorted(found))})")
    return found.pop() if found else "local"


def initialised_backend(data_dir: Path) -> str | None:
    """The backend type `init` last configured in this data directory."""
    path = data_dir / "terraform.tfstate"
    if not path.is_file():
        return None
    try:
        backend = json.loads(path.read_text(encoding="utf-8")).get("backend") or {}
    except ValueError:
        return None
    kind = backend.get("type")
    return str(kind) if kind else None


def _holds_resources(state: Path) -> bool:
    try:
        return bool(json.loads(state.read_text(encoding="utf-8")).get("resources"))
    except (OSError, ValueError):
        return False


def repo_root() -> Path:
    """The checkout this package lives in (agents/isoloir/controller/infra -> repo)."""
    return Path(__file__).resolve().parents[4]


def default_infra_dir() -> Path:
    return repo_root() / "infra"


def default_run_dir() -> Path:
    return repo_root() / ".run"


# ------------------------------------------------------------ provider mirror


def find_provider_mirror(roots: Iterable[str] = MIRROR_SEARCH_ROOTS) -> Path | None:
    """A local filesystem mirror holding hashicorp/aws, found at run time.

    The layout is <mirror>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/<binary>;
    `ISOLOIR_TF_MIRROR` names one explicitly.
    """
    explicit = os.environ.get("ISOLOIR_TF_MIRROR")
    if explicit:
        return Path(explicit) if Path(explicit).is_dir() else None
    for root in roots:
        base = Path(root).expanduser()
        if not base.is_dir():
            continue
        base_depth = len(base.parts)
        for dirpath, dirnames, filenames in os.walk(base):
            here = Path(dirpath)
            if len(here.parts) - base_depth >= _MIRROR_MAX_DEPTH:
                dirnames[:] = []
            for name in filenames:
                if name.startswith("terraform-provider-aws"):
                    binary = here / name
                    parents = binary.parents
                    if len(parents) > 5 and parents[4].name == "registry.terraform.io":
                        return parents[5]
    return None


def write_cli_config(run_dir: Path, mirror: Path | None) -> Path | None:
    """Write a Terraform CLI config using `mirror` for hashicorp/* (None: no file)."""
    if mirror is None:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "terraformrc"
    path.write_text(
        "# Written by isoloir infra: use the local provider mirror found at run time.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n",
        encoding="utf-8",
    )
    return path


def terraform_env(run_dir: Path, data_dir: Path) -> dict[str, str]:
    """Environment every Terraform call gets: mirror config, data dir, plugin cache."""
    env: dict[str, str] = {
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "TF_DATA_DIR": str(data_dir),
        "TF_PLUGIN_CACHE_DIR": str(run_dir / "tf-plugin-cache"),
        "CHECKPOINT_DISABLE": "1",
    }
    (run_dir / "tf-plugin-cache").mkdir(parents=True, exist_ok=True)
    config = write_cli_config(run_dir, find_provider_mirror())
    if config is not None:
        env["TF_CLI_CONFIG_FILE"] = str(config)
    return env


# ------------------------------------------------------------ plan summary


@dataclass(frozen=True)
class PlanSummary:
    """What a saved plan would do, counted from `terraform show -json`."""

    add: int
    change: int
    destroy: int
    addresses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.add or self.change or self.destroy)

    def line(self) -> str:
        return f"Plan: {self.add} to add, {self.change} to change, {self.destroy} to destroy."


def summarise_plan(plan_json: Mapping[str, Any]) -> PlanSummary:
    add = change = destroy = 0
    addresses: dict[str, tuple[str, ...]] = {}
    for rc in plan_json.get("resource_changes", []):
        if rc.get("mode") != "managed":
            continue
        actions = tuple(rc.get("change", {}).get("actions", []))
        if actions in {("no-op",), ("read",)}:
            continue
        addresses[str(rc["address"])] = actions
        if "create" in actions:
            add += 1
        if "delete" in actions:
            destroy += 1
        if actions == ("update",):
            change += 1
    return PlanSummary(add, change, destroy, addresses)


# ------------------------------------------------------------ the wrapper


@dataclass
class Terraform:
    """Terraform CLI on one configuration directory with one state.

    `state_path`: where the local backend keeps the state (the `backend "local"`
    block in infra/backend.tf takes it as `-backend-config=path=...`); unused
    when infra/ declares another backend. `backend_config`: a partial backend
    configuration file passed as `-backend-config=FILE` (docs/infra.md).
    """

    infra_dir: Path
    data_dir: Path
    env: dict[str, str]
    state_path: Path | None = None
    backend_config: Path | None = None
    log: Log = field(default=lambda line: print(line, flush=True))
    binary: str = "terraform"
    # Called with the var files before every plan but a destroy; raises to refuse.
    before_plan: Callable[[Sequence[Path]], None] | None = None
    # Non-local backend only: more `-backend-config=KEY=VALUE` settings after
    # `backend_config` (the split layout's state key per root instance).
    backend_settings: tuple[str, ...] = ()

    def _command(self, args: Sequence[str]) -> list[str]:
        exe = shutil.which(self.binary) or self.binary
        return [exe, f"-chdir={self.infra_dir}", *args]

    def _environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        return env

    def run(
        self,
        args: Sequence[str],
        *,
        ok: Sequence[int] = (0,),
        stream: bool = True,
    ) -> tuple[int, list[str]]:
        """Run terraform, streaming its lines to `log`; returns (code, lines)."""
        lines: list[str] = []
        with subprocess.Popen(  # noqa: S603 - argv list, no shell
            self._command(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._environ(),
            text=True,
            errors="replace",
        ) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                if stream and not any(noise in line for noise in _NOISY):
                    self.log(line)
            code = proc.wait()
        if code not in ok:
            if not stream:
                for line in lines[-40:]:
                    self.log(line)
            raise TerraformError(args, code, lines[-40:])
        return code, lines

    def capture(self, args: Sequence[str]) -> str:
        """Run terraform and return its standard output (no streaming)."""
        proc = subprocess.run(  # noqa: S603
            self._command(args),
            capture_output=True,
            text=True,
            env=self._environ(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if proc.returncode != 0:
            raise TerraformError(args, proc.returncode, proc.stderr.splitlines()[-40:])
        return proc.stdout

    # -------------------------------------------------------------- commands
    def init_args(self) -> list[str]:
        """`init`'s argv for the backend infra/ declares.

        Local backend: the state at `state_path`. Any other (S3 in production):
        no `path=`, which that backend would refuse; `backend_config` (a partial
        configuration file) if given; `-reconfigure` when the data directory was
        initialised for another backend type. A local state holding resources is
        never left behind silently: its migration is the operator's explicit step.
        """
        args = ["init", "-input=false", "-no-color"]
        try:
            mode = lockfile_mode(self.env if LOCKFILE_ENV in self.env else None)
            backend = declared_backend(self.infra_dir)
        except ValueError as exc:
            raise TerraformError(["init"], 2, [], hint=str(exc)) from exc
        if mode == "readonly":
            args.append("-lockfile=readonly")
        if backend == "local":
            if self.state_path is not None:
                args.append(f"-backend-config=path={self.state_path}")
        elif self.state_path is not None and _holds_resources(self.state_path):
            raise TerraformError(
                ["init"],
                2,
                [],
                hint=f"infra/ now declares the {backend} backend but {self.state_path} still "
                f"holds the state: move it once with `TF_DATA_DIR={self.data_dir} terraform "
                f"-chdir={self.infra_dir} init -migrate-state`, then delete the local file",
            )
        if self.backend_config is not None:
            args.append(f"-backend-config={self.backend_config}")
        if backend != "local":
            args += [f"-backend-config={setting}" for setting in self.backend_settings]
        previous = initialised_backend(self.data_dir)
        if previous is not None and previous != backend:
            args.append("-reconfigure")
        return args

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
        args = self.init_args()
        try:
            self.run(args, stream=False)
        except TerraformError as exc:
            text = "\n".join(exc.tail)
            if "-lockfile=readonly" in args and any(m in text for m in _LOCK_MISMATCH):
                raise TerraformError(args, exc.code, exc.tail, hint=LOCK_HINT) from exc
            raise

    def plan(
        self,
        var_files: Sequence[Path],
        out: Path,
        *,
        destroy: bool = False,
        refresh: bool = True,
    ) -> tuple[int, PlanSummary]:
        """`plan -detailed-exitcode -out`: returns (0 none | 2 changes, summary)."""
        if self.before_plan is not None and not destroy:
            try:
                self.before_plan(var_files)
            except RuntimeError as exc:
                raise TerraformError(["plan"], 2, [], hint=str(exc)) from exc
        args = ["plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={out}"]
        args += [f"-var-file={f}" for f in var_files]
        if destroy:
            args.append("-destroy")
        if not refresh:
            args.append("-refresh=false")
        code, _ = self.run(args, ok=(0, 2))
        summary = self.show_plan(out)
        return code, summary

    def show_plan(self, plan: Path) -> PlanSummary:
        data = json.loads(self.capture(["show", "-json", str(plan)]))
        return summarise_plan(data)

    def forget_applied_inputs(self) -> None:
        """Remove the deploy's record of the last applied inputs (infra.inputs):
        whatever changes the state next, the deploy must plan again."""
        from isoloir.controller.infra.inputs import InputsRecord

        InputsRecord.in_state_dir(self.data_dir.parent).clear()

    def apply(self, plan: Path, parallelism: int = APPLY_PARALLELISM) -> None:
        self.forget_applied_inputs()
        self.run(["apply", "-input=false", "-no-color", f"-parallelism={parallelism}", str(plan)])

    def destroy(self, var_files: Sequence[Path]) -> None:
        self.forget_applied_inputs()
        args = ["destroy", "-auto-approve", "-input=false", "-no-color"]
        args += [f"-var-file={f}" for f in var_files]
        self.run(args)

    def output(self) -> dict[str, Any]:
        data = json.loads(self.capture(["output", "-json"]))
        return {k: v.get("value") for k, v in data.items()}

    def state_pull(self) -> dict[str, Any] | None:
        """The current state as JSON (`state pull`, any backend); None without one."""
        text = self.capture(["state", "pull"]).strip()
        if not text:
            return None
        data: dict[str, Any] = json.loads(text)
        return data

    def state_push(self, path: Path) -> None:
        """`state push` of a state file (no -force: Terraform refuses an older
        serial or another lineage than the state in place)."""
        self.forget_applied_inputs()
        self.run(["state", "push", str(path)], stream=False)

    def state_addresses(self) -> list[str]:
        text = self.capture(["state", "list"])
        return [line for line in text.splitlines() if line.strip()]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.monotonic()
    result = fn()
    return time.monotonic() - start, result


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
