"""The split layout: several Terraform roots instead of one (opt-in).

`ISOLOIR_TF_LAYOUT=split` (default `single`: the one root in infra/, unchanged)
runs the roots of infra/roots/ instead:

- `baseline`, once: the account baseline (password policy, people's users,
  groups, the agents' role, the account's public access block);
- `region`, once per region holding elections: its access-log bucket and, when
  hosts are created, its file-share host;
- `elections`, once per batch of a region's elections: their storage only.

An election's batch is `int(sha256(id)[:8], 16) % batch_count`, with a batch
count per region that stays constant (12, or `ISOLOIR_TF_BATCHES`): adding an
election never moves another one, and changes one batch's variables only.

Every root instance has its own data directory, state
(`.run/infra/<target>/roots/<instance>.tfstate`, or one key per instance in a
remote backend) and variable file, written here from the rendered variables,
the target's settings and the outputs of the roots before it (the baseline's
role, principals and user ARNs; the region's log bucket), so that these enter
its digest (`infra.inputs.digest`, with the modules it reads). An instance
whose digest is that of its last apply is skipped; the others are planned, and
applied when the plan changes something. Stages run in order, baseline, then
regions, then batches; the instances of one stage run concurrently
(`ISOLOIR_TF_CONCURRENCY`, default 4) with the one shared plugin cache (their
`init`s one at a time: Terraform's plugin cache is not safe for concurrent
installs). The outputs are merged into the single root's output shapes, so the
deploy and the inventory read them unchanged. docs/infra.md has the figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isoloir.controller.infra.inputs import InputsRecord, digest, module_files, replan_forced
from isoloir.controller.infra.runner import (
    BACKEND_CONFIG_ENV,
    BACKEND_CONFIG_FILE,
    Log,
    PlanSummary,
    Terraform,
    TerraformError,
    declared_backend,
    default_infra_dir,
    terraform_env,
)

LAYOUT_ENV = "ISOLOIR_TF_LAYOUT"
LAYOUTS = ("single", "split")
BATCHES_ENV = "ISOLOIR_TF_BATCHES"
# Per region. A constant on purpose: changing it moves elections between batch
# states, which is a migration (docs/infra.md), not a setting to tune per deploy.
DEFAULT_BATCHES = 12
CONCURRENCY_ENV = "ISOLOIR_TF_CONCURRENCY"
DEFAULT_CONCURRENCY = 4
# Remote backend only: each instance's state key is this prefix + <instance>.tfstate.
STATE_PREFIX_ENV = "ISOLOIR_TF_STATE_PREFIX"
DEFAULT_STATE_PREFIX = "isoloir/roots/"
ROOTS = ("baseline", "region", "elections")
VARIABLES_FILE = "variables.tfvars.json"
# The batch count a deployment's elections were placed with (in the instances' directory)
BATCHES_FILE = "batches"

# What each root reads from the merged variables (the rest comes from outputs).
BASELINE_KEYS = (
    "org_slug",
    "default_region",
    "password_policy",
    "people",
    "administrators",
    "manage_account_public_access_block",
    "deployer_principal_arns",
    "break_glass_role_arns",
    "extra_tags",
    "aws_endpoint",
)
REGION_KEYS = (
    "default_region",
    "org_slug",
    "log_bucket_name",
    "kms_deletion_window_days",
    "admin_networks",
    "mail_guard_enabled",
    "mail_upstream",
    "alert_smtp_port",
    "deploy_public_key",
    "create_hosts",
    "host_detailed_monitoring",
    "force_destroy_logs",
    "extra_tags",
    "aws_endpoint",
)
BATCH_KEYS = (
    "org_slug",
    "kms_deletion_window_days",
    "lifecycle_backstop_days",
    "extra_tags",
    "aws_endpoint",
)


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def layout(env: Mapping[str, str] | None = None) -> str:
    value = _env(env).get(LAYOUT_ENV, "") or "single"
    if value not in LAYOUTS:
        raise ValueError(f"{LAYOUT_ENV}={value!r}: expected one of {', '.join(LAYOUTS)}")
    return value


def managed_resources(state_path: Path) -> int:
    """Managed resource instances in a local state file (0 without one)."""
    try:
        data = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    return sum(
        len(r.get("instances", [])) for r in data.get("resources", []) if r.get("mode") == "managed"
    )


def refuse_mixed_layouts(chosen: str, state_dir: Path) -> None:
    """ValueError when a target deployed in one layout is deployed in the other:
    the split roots would re-create what the single state holds (buckets that
    exist, keys), and the single root would re-create what the split states hold.
    Reads the target's local files only: a single state kept in a remote backend
    is not seen (docs/infra.md, "Migrating a single state to the split layout")."""
    single = state_dir / "terraform.tfstate"
    split_dir = state_dir / "roots"
    if chosen == "split" and (n := managed_resources(single)):
        raise ValueError(
            f"{single} holds the single root's {n} resource(s): run `isoloir infra migrate` "
            f"once before deploying with {LAYOUT_ENV}=split"
        )
    if chosen == "single" and split_dir.is_dir():
        # an instance's directory, with a local state holding resources or none at
        # all (a remote backend); a split layout destroyed leaves empty states
        found = [
            p.name
            for p in split_dir.iterdir()
            if p.is_dir()
            and Instance.from_name(p.name) is not None
            and (
                not (state := split_dir / f"{p.name}.tfstate").is_file() or managed_resources(state)
            )
        ]
        if found:
            raise ValueError(
                f"this target is deployed with the split layout ({len(found)} root "
                f"instance(s) in {split_dir}): set {LAYOUT_ENV}=split"
            )


def _positive(env: Mapping[str, str] | None, name: str, default: int) -> int:
    raw = _env(env).get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a whole number") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r}: expected at least 1")
    return value


def batch_count(env: Mapping[str, str] | None = None) -> int:
    return _positive(env, BATCHES_ENV, DEFAULT_BATCHES)


def concurrency(env: Mapping[str, str] | None = None) -> int:
    return _positive(env, CONCURRENCY_ENV, DEFAULT_CONCURRENCY)


def batch_of(election_id: str, count: int) -> int:
    """The batch of an election: a function of its id and the count alone."""
    return int(hashlib.sha256(election_id.encode()).hexdigest()[:8], 16) % count


# ------------------------------------------------------------ root instances


@dataclass(frozen=True, order=True)
class Instance:
    """One root instance: the baseline, a region, or one batch of a region."""

    root: str
    region: str = ""
    batch: int = -1

    @property
    def name(self) -> str:
        """File-name form: baseline, region-eu-west-3, elections-eu-west-3-07."""
        if self.root == "baseline":
            return "baseline"
        if self.root == "region":
            return f"region-{self.region}"
        return f"elections-{self.region}-{self.batch:02d}"

    @property
    def label(self) -> str:
        """Progress-line form: baseline, region eu-west-3, elections eu-west-3/07."""
        if self.root == "baseline":
            return "baseline"
        if self.root == "region":
            return f"region {self.region}"
        return f"elections {self.region}/{self.batch:02d}"

    @classmethod
    def from_name(cls, name: str) -> Instance | None:
        if name == "baseline":
            return cls("baseline")
        if name.startswith("region-"):
            return cls("region", name[len("region-") :])
        if name.startswith("elections-"):
            region, _, batch = name[len("elections-") :].rpartition("-")
            if region and batch.isdigit():
                return cls("elections", region, int(batch))
        return None


def load_variables(var_files: Sequence[Path]) -> dict[str, Any]:
    """The variables of JSON var files merged in order (a later file wins, as in
    Terraform). The split layout writes each root's own file from them, so it
    reads JSON only (the rendered variables and the targets' settings are JSON)."""
    merged: dict[str, Any] = {}
    for path in var_files:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(
                f"{path}: the split layout ({LAYOUT_ENV}=split) reads JSON variable files "
                f"only ({exc}); write it as .tfvars.json"
            ) from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of variables")
        merged.update(data)
    return merged


def _elections(variables: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = variables.get("elections") or {}
    return dict(found) if isinstance(found, Mapping) else {}


def batches(variables: Mapping[str, Any], count: int) -> dict[tuple[str, int], list[str]]:
    """(region, batch) -> ids of the elections in it, for every non-empty batch."""
    out: dict[tuple[str, int], list[str]] = {}
    for election_id, e in sorted(_elections(variables).items()):
        out.setdefault((str(e["region"]), batch_of(election_id, count)), []).append(election_id)
    return out


def _pick(variables: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: variables[k] for k in keys if k in variables}


def baseline_vars(variables: Mapping[str, Any]) -> dict[str, Any]:
    return _pick(variables, BASELINE_KEYS)


def region_vars(
    variables: Mapping[str, Any], region: str, baseline: Mapping[str, Any]
) -> dict[str, Any]:
    out = _pick(variables, REGION_KEYS)
    out["region"] = region
    out["account_id"] = baseline["account_id"]
    out["instance_profile"] = baseline["agent_instance_profile"]
    for key, var in (("host_image_ids", "host_image_id"), ("subnet_ids", "subnet_id")):
        value = (variables.get(key) or {}).get(region)
        if value is not None:
            out[var] = value
    # Only a host serves the elections: without hosts, the region root's inputs
    # do not name them, and adding an election leaves it untouched.
    hosts = bool(variables.get("create_hosts", True))
    out["host_elections"] = (
        sorted(i for i, e in _elections(variables).items() if e["region"] == region)
        if hosts
        else []
    )
    return out


def log_bucket_of(variables: Mapping[str, Any], region: str) -> str:
    """The region's access-log bucket as modules/region names it."""
    base = str(variables["log_bucket_name"])
    return base if region == variables.get("default_region") else f"{base}-{region}"


def batch_vars(
    variables: Mapping[str, Any],
    region: str,
    ids: Iterable[str],
    baseline: Mapping[str, Any],
    log_bucket: str,
) -> dict[str, Any]:
    """One batch root's variables: its elections only, members as user ARNs."""
    elections = _elections(variables)
    users: Mapping[str, str] = baseline.get("user_arns") or {}
    out = _pick(variables, BATCH_KEYS)
    out.update(
        {
            "region": region,
            "log_bucket_name": log_bucket,
            "account_id": baseline["account_id"],
            "agent_role_arn": baseline["agent_role_arn"],
            "admin_principal_arns": list(baseline["admin_principal_arns"]),
            "elections": {
                i: {
                    "bucket_name": elections[i]["bucket_name"],
                    "retention_date": elections[i]["retention_date"],
                    "legal_hold": bool(elections[i]["legal_hold"]),
                    "member_arns": [users[m] for m in sorted(elections[i]["members"])],
                    "campaign_prefixes": list(elections[i].get("campaign_prefixes") or []),
                }
                for i in sorted(ids)
            },
        }
    )
    return out


def merge_outputs(
    variables: Mapping[str, Any],
    baseline: Mapping[str, Any],
    regions: Mapping[str, Mapping[str, Any]],
    batch_outputs: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The roots' outputs in the single root's shapes (infra/outputs.tf)."""
    storage: dict[str, Mapping[str, Any]] = {}
    for out in batch_outputs:
        storage.update(out.get("elections") or {})
    elections = {
        i: {
            "region": e["region"],
            "bucket_name": storage[i]["bucket_name"],
            "bucket_arn": storage[i]["bucket_arn"],
            "kms_key_arn": storage[i]["kms_key_arn"],
            "kms_alias": storage[i]["kms_alias"],
        }
        for i, e in sorted(_elections(variables).items())
        if i in storage
    }
    hosts = {r: out["host"] for r, out in sorted(regions.items()) if out.get("host")}
    return {
        "account_id": baseline.get("account_id"),
        "elections": elections,
        "bucket_names": {i: s["bucket_name"] for i, s in storage.items()},
        "kms_key_arns": {i: s["kms_key_arn"] for i, s in storage.items()},
        "hosts": hosts,
        "file_share_hosts": {
            f"isoloir-shares-{r}": {
                "address": h["private_ip"],
                "ssh_user": "isoloir-deploy",
                "region": r,
                "elections": h["elections"],
                "data_volume_id": h["data_volume_id"],
            }
            for r, h in hosts.items()
        },
        "log_buckets": {
            str(out["log_bucket_region"]): out["log_bucket_name"] for out in regions.values()
        },
        "agent_role_arn": baseline.get("agent_role_arn"),
        "agent_instance_profile": baseline.get("agent_instance_profile"),
        "human_groups": baseline.get("human_groups"),
        "mfa_policy_arn": baseline.get("mfa_policy_arn"),
        "admin_principal_arns": baseline.get("admin_principal_arns"),
    }


def modules_digest(modules_dir: Path) -> str:
    """sha256 of the shared modules every root reads (READMEs aside)."""
    h = hashlib.sha256()
    for f in module_files(modules_dir):
        data = f.read_bytes()
        h.update(f"{f.relative_to(modules_dir).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


# ------------------------------------------------------------ the driver


@dataclass
class RootResult:
    instance: Instance
    skipped: bool
    outputs: dict[str, Any]
    summary: PlanSummary | None = None
    seconds: float = 0.0  # init, plan, apply and output (0 when skipped)
    plan_seconds: float = 0.0  # init and plan (with its refresh) only

    @property
    def changes(self) -> int:
        s = self.summary
        return 0 if s is None else s.add + s.change + s.destroy

    def line(self) -> str:
        if self.skipped:
            return f"{self.instance.label}: skipped, inputs unchanged"
        s = self.summary
        if s is None or not s.changed:
            return f"{self.instance.label}: no change"
        parts = [
            f"{n} to {what}"
            for n, what in ((s.add, "add"), (s.change, "change"), (s.destroy, "destroy"))
            if n
        ]
        return f"{self.instance.label}: {', '.join(parts)}"


@dataclass
class SplitConverged:
    """What the split converge did: one result per root instance, merged outputs."""

    results: list[RootResult]
    outputs: dict[str, Any]

    @property
    def skipped(self) -> bool:
        return all(r.skipped for r in self.results)

    @property
    def changes(self) -> int:
        return sum(r.changes for r in self.results)

    @property
    def summary(self) -> PlanSummary:
        addresses: dict[str, tuple[str, ...]] = {}
        for r in self.results:
            if r.summary is not None:
                for address, actions in r.summary.addresses.items():
                    addresses[f"{r.instance.name}:{address}"] = actions
        return PlanSummary(
            sum(r.summary.add for r in self.results if r.summary),
            sum(r.summary.change for r in self.results if r.summary),
            sum(r.summary.destroy for r in self.results if r.summary),
            addresses,
        )

    def planned(self) -> list[str]:
        """Names of the instances that were planned (not skipped)."""
        return [r.instance.name for r in self.results if not r.skipped]


class RootsError(RuntimeError):
    """One or more root instances failed; `tail` holds the first one's last lines."""

    def __init__(self, message: str, tail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.tail = list(tail)


@dataclass
class SplitLayout:
    """The roots of infra/roots/ for one target (its state directory and environment)."""

    state_dir: Path
    run_dir: Path
    env: Mapping[str, str]
    infra_dir: Path = field(default_factory=default_infra_dir)
    backend_config: Path | None = None
    log: Log = field(default=lambda line: None)
    show: Callable[[str], None] = field(default=lambda line: None)
    binary: str = "terraform"
    batches: int | None = None
    workers: int | None = None
    force: bool | None = None
    # Called once with the deploy's variable files before the first election
    # root is planned (the target's shredded-key guard); raises to refuse.
    before_plan: Callable[[Sequence[Path]], None] | None = None
    _init_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _base_env: dict[str, str] | None = field(default=None, repr=False)

    @property
    def roots_dir(self) -> Path:
        return self.infra_dir / "roots"

    @property
    def instances_dir(self) -> Path:
        return self.state_dir / "roots"

    def instance_dir(self, inst: Instance) -> Path:
        return self.instances_dir / inst.name

    def state_path(self, inst: Instance) -> Path:
        return self.instances_dir / f"{inst.name}.tfstate"

    def resources(self, inst: Instance) -> int:
        """Managed resource instances in a local state (0 without one)."""
        return managed_resources(self.state_path(inst))

    def keep_batches(self, count: int, *, record: bool) -> None:
        """Refuse a batch count other than the one this deployment's elections
        were placed with: each election's resources are in the state of its batch,
        and another count would plan them created in one batch and destroyed in
        another (re-batching, which would move them, is not built). The count is
        recorded by the first converge that applies (`record`). A deployment made
        before the record existed is refused only when one of its batches could
        not exist with `count`."""
        path = self.instances_dir / BATCHES_FILE
        try:
            recorded: int | None = int(path.read_text(encoding="utf-8").strip())
        except FileNotFoundError:
            recorded = None
        except (OSError, ValueError) as exc:
            raise RootsError(f"{path}: unreadable batch count ({exc})") from exc
        beyond = [i for i in self.existing() if i.root == "elections" and i.batch >= count]
        if recorded not in (None, count) or beyond:
            if recorded is not None:
                was, fix = str(recorded), f"set {BATCHES_ENV}={recorded}"
            else:
                highest = max(i.batch for i in beyond)
                was, fix = f"more than {highest}", "set it back to the first deploy's value"
            raise RootsError(
                f"this deployment's elections are in {was} batch(es) per region; "
                f"{BATCHES_ENV}={count} would plan them destroyed in one batch and created "
                f"in another (re-batching is not supported): {fix}"
            )
        if recorded is None and record:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{count}\n", encoding="utf-8")

    def existing(self) -> list[Instance]:
        """Instances applied before (their directory exists), even if no longer needed:
        an emptied batch is planned once more to destroy its elections' storage."""
        if not self.instances_dir.is_dir():
            return []
        found = (Instance.from_name(p.name) for p in self.instances_dir.iterdir() if p.is_dir())
        return sorted(i for i in found if i is not None)

    def terraform(self, inst: Instance) -> Terraform:
        if self._base_env is None:
            self._base_env = terraform_env(self.run_dir, self.state_dir / "tf-data")
        data_dir = self.instance_dir(inst) / "tf-data"
        env = {**self._base_env, "TF_DATA_DIR": str(data_dir), **self.env}
        root = self.roots_dir / inst.root
        remote = declared_backend(root) != "local"
        prefix = os.environ.get(STATE_PREFIX_ENV) or DEFAULT_STATE_PREFIX
        label = inst.label
        return Terraform(
            infra_dir=root,
            data_dir=data_dir,
            env=env,
            state_path=self.state_path(inst),
            backend_config=self.backend_config if remote else None,
            backend_settings=(f"key={prefix}{inst.name}.tfstate",) if remote else (),
            log=lambda line: self.log(f"[{label}] {line}"),
            binary=self.binary,
        )

    def _digest(self, tf: Terraform, var_file: Path, modules: str) -> str:
        return digest(
            tf.infra_dir,
            [var_file],
            backend_config=tf.backend_config,
            state_path=tf.state_path if tf.backend_config is None else None,
            extra=[("modules", modules), ("backend-settings", "\n".join(tf.backend_settings))],
        )

    def _write_vars(self, inst: Instance, values: Mapping[str, Any]) -> Path:
        path = self.instance_dir(inst) / VARIABLES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    def _run_one(
        self, inst: Instance, tf: Terraform, var_file: Path, apply: bool, adopt: bool = False
    ) -> RootResult:
        plan_file = self.instance_dir(inst) / "tfplan"
        start = time.monotonic()
        try:
            with self._init_lock:
                tf.init()
            _, summary = tf.plan([var_file], plan_file)
            planned = round(time.monotonic() - start, 1)
            if summary.changed and apply:
                tf.apply(plan_file)
            elif adopt and not summary.changed:
                # No resource changes: applying it writes the root's outputs only
                # (a migrated state has none), which the next stage reads.
                tf.apply(plan_file)
            outputs = tf.output() if apply or adopt or self.state_path(inst).is_file() else {}
        finally:
            plan_file.unlink(missing_ok=True)
        return RootResult(
            inst, False, outputs, summary, round(time.monotonic() - start, 1), planned
        )

    def _stage(
        self,
        jobs: Sequence[tuple[Instance, dict[str, Any]]],
        *,
        apply: bool,
        modules: str,
        var_files: Sequence[Path] = (),
        adopt: bool = False,
    ) -> list[RootResult]:
        forced = adopt or (replan_forced() if self.force is None else self.force)
        results: dict[Instance, RootResult] = {}
        todo: list[tuple[Instance, Terraform, Path, InputsRecord]] = []
        for inst, values in jobs:
            tf = self.terraform(inst)
            var_file = self._write_vars(inst, values)
            record = InputsRecord.in_state_dir(self.instance_dir(inst))
            recorded = (
                None if forced else record.outputs_if_unchanged(self._digest(tf, var_file, modules))
            )
            if recorded is not None:
                results[inst] = RootResult(inst, True, recorded)
                self.show(results[inst].line())
            else:
                todo.append((inst, tf, var_file, record))
        if todo and self.before_plan is not None and any(i.root == "elections" for i, *_ in todo):
            self.before_plan(var_files)
        failures: list[tuple[Instance, BaseException]] = []
        workers = self.workers or concurrency()
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1))) as pool:
            futures = {
                pool.submit(self._run_one, inst, tf, var_file, apply, adopt): (
                    inst,
                    tf,
                    var_file,
                    record,
                )
                for inst, tf, var_file, record in todo
            }
            for future, (inst, tf, var_file, record) in futures.items():
                try:
                    result = future.result()
                except (TerraformError, OSError, ValueError) as exc:
                    failures.append((inst, exc))
                    self.show(f"{inst.label}: failed: {exc}")
                    continue
                results[inst] = result
                self.show(result.line())
                if apply or (adopt and not result.changes):
                    # after the apply (adopting: of a plan without resource
                    # changes, which wrote the outputs): the state's new serial
                    # is part of the inputs
                    record.write(self._digest(tf, var_file, modules), result.outputs)
        if failures:
            first, error = failures[0]
            names = ", ".join(i.label for i, _ in failures)
            raise RootsError(
                f"Terraform failed in {len(failures)} root(s): {names} ({first.label}: {error})",
                getattr(error, "tail", []),
            )
        return [results[inst] for inst, _ in jobs]

    def converge(
        self, var_files: Sequence[Path], *, apply: bool = True, adopt: bool = False
    ) -> SplitConverged:
        """Baseline, regions, batches; each instance skipped, planned or applied.

        `apply=False` plans only (`isoloir infra plan`): an instance whose
        upstream outputs do not exist yet (nothing applied) is not planned.
        `adopt=True` (with `apply=False`; `isoloir infra migrate`) plans every
        instance, applies only the plans without resource changes (to write
        their outputs) and records those instances' inputs, and stops after a
        stage that plans a change."""
        variables = load_variables(var_files)
        count = self.batches or batch_count()
        self.keep_batches(count, record=apply or adopt)
        modules = modules_digest(self.infra_dir / "modules")
        existing = self.existing()
        results: list[RootResult] = []

        def stopped() -> bool:
            return adopt and any(r.changes for r in results)

        base = self._stage(
            [(Instance("baseline"), baseline_vars(variables))],
            apply=apply,
            modules=modules,
            adopt=adopt,
        )
        results += base
        baseline = base[0].outputs
        if stopped():
            return SplitConverged(results, {})
        if not baseline:
            self.show("region and election roots: planned once the baseline is applied")
            return SplitConverged(results, merge_outputs(variables, baseline, {}, []))

        wanted = batches(variables, count)
        regions = sorted(
            {r for r, _ in wanted} | {i.region for i in existing if i.root == "region"}
        )
        region_results = self._stage(
            [(Instance("region", r), region_vars(variables, r, baseline)) for r in regions],
            apply=apply,
            modules=modules,
            adopt=adopt,
        )
        results += region_results
        if stopped():
            return SplitConverged(results, {})
        region_outputs = {r.instance.region: r.outputs for r in region_results if r.outputs}

        keys = sorted(
            set(wanted) | {(i.region, i.batch) for i in existing if i.root == "elections"}
        )
        jobs = []
        for region, batch in keys:
            log_bucket = (region_outputs.get(region) or {}).get("log_bucket_name") or log_bucket_of(
                variables, region
            )
            ids = wanted.get((region, batch), [])
            jobs.append(
                (
                    Instance("elections", region, batch),
                    batch_vars(variables, region, ids, baseline, str(log_bucket)),
                )
            )
        batch_results = self._stage(
            jobs, apply=apply, modules=modules, var_files=var_files, adopt=adopt
        )
        results += batch_results
        merged = merge_outputs(
            variables, baseline, region_outputs, (r.outputs for r in batch_results)
        )
        return SplitConverged(results, merged)

    def destroy(self) -> list[Instance]:
        """Destroy every instance applied before, batches first, the baseline last,
        each with the variables it was last planned with."""
        order = {"elections": 0, "region": 1, "baseline": 2}
        done = []
        for inst in sorted(self.existing(), key=lambda i: (order[i.root], i)):
            var_file = self.instance_dir(inst) / VARIABLES_FILE
            if not var_file.is_file():
                continue
            tf = self.terraform(inst)
            tf.init()
            self.show(f"{inst.label}: destroying")
            tf.destroy([var_file])
            done.append(inst)
        return done


def split_layout(
    target: Any,
    *,
    log: Log = lambda line: None,
    show: Callable[[str], None] = lambda line: None,
    infra_dir: Path | None = None,
) -> SplitLayout:
    """The split layout for a `targets.Target` (its state dir, environment, guard)."""
    infra = infra_dir or default_infra_dir()
    backend_config = None
    if target.name == "aws" and declared_backend(infra / "roots" / "baseline") != "local":
        named = os.environ.get(BACKEND_CONFIG_ENV)
        default = infra / BACKEND_CONFIG_FILE
        backend_config = Path(named) if named else default if default.is_file() else None
    return SplitLayout(
        state_dir=target.state_dir,
        run_dir=target.run_dir,
        env=dict(target.env),
        infra_dir=infra,
        backend_config=backend_config,
        log=log,
        show=show,
        before_plan=target.refuse_shredded,
    )
