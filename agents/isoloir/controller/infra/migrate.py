"""`isoloir infra migrate`: the single root's state moved into the split layout's
states, once (docs/infra.md, "Migrating a single state to the split layout").

1. `terraform state pull` of the single root (local or remote backend).
2. Every resource is mapped by its module address to a split instance: the
   account baseline to `baseline`; `module.<region>[0].module.election["<id>"]`
   to the batch `elections-<region>-<batch_of(id)>` as `module.election["<id>"]`;
   the rest of `module.<region>[0]` (log bucket, host) to `region-<region>` as
   `module.region`. Data sources are dropped (every root reads them again); a
   managed resource that maps nowhere stops the migration before anything is
   written.
3. Each instance's state (version 4, the single state's Terraform version, a
   fresh lineage, serial 1, no outputs) is pushed with `terraform state push`,
   after checking that no instance state holds resources yet.
4. Every instance is planned with the driver's variables (`converge(adopt=True)`);
   a plan without resource changes is applied to write the root's outputs, which
   the next stage reads. Any change: the pushed states are removed again and the
   single state is left as it was. Only when every instance plans clean is the
   single state archived (local backend) or left to the operator (remote).

The mapping and the state construction are pure functions (tests/unit/
test_infra_migrate.py); what is printed is counts and addresses, never the
baseline's addresses (IAM users are named after people).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from isoloir.controller.infra import roots
from isoloir.controller.infra.runner import Log, Terraform, TerraformError, declared_backend

# infra/main.tf: one `module "<name>"` (count 0 or 1) per EU region.
REGION_MODULES = {
    "eu_west_3": "eu-west-3",
    "eu_west_1": "eu-west-1",
    "eu_central_1": "eu-central-1",
    "eu_north_1": "eu-north-1",
    "eu_south_1": "eu-south-1",
    "eu_south_2": "eu-south-2",
}
STATE_VERSION = 4
ARCHIVE_SUFFIX = ".migrated-"
# One module step of an address: module.NAME, with an optional [N] or ["key"].
_STEP = re.compile(r'module\.([A-Za-z0-9_-]+)(?:\[(\d+|"(?:[^"\\]|\\.)*")\])?')
_ALIAS = re.compile(r'^(provider\["[^"]+"\])(?:\.[A-Za-z0-9_-]+)?$')


class MigrationError(RuntimeError):
    """The migration refused or failed; nothing is left half-applied."""


# ------------------------------------------------------------ pure: addresses


def module_steps(module: str) -> list[tuple[str, str | None]]:
    """`module.a[0].module.b["x"]` -> [("a", "0"), ("b", '"x"')]; ValueError if malformed."""
    steps: list[tuple[str, str | None]] = []
    pos = 0
    while pos < len(module):
        if steps:
            if module[pos] != ".":
                raise ValueError(module)
            pos += 1
        m = _STEP.match(module, pos)
        if m is None:
            raise ValueError(module)
        steps.append((m.group(1), m.group(2)))
        pos = m.end()
    return steps


def _render(steps: Iterable[tuple[str, str | None]]) -> str:
    return ".".join(
        f"module.{name}" + (f"[{key}]" if key is not None else "") for name, key in steps
    )


def target_of(module: str, count: int) -> tuple[roots.Instance, str] | None:
    """The split instance and module address of a single-root module address
    (None: it maps nowhere, e.g. the root module itself)."""
    try:
        steps = module_steps(module)
    except ValueError:
        return None
    if not steps:
        return None
    (name, key), rest = steps[0], steps[1:]
    if name == "account_baseline" and key is None:
        return roots.Instance("baseline"), module
    region = REGION_MODULES.get(name)
    if region is None or key not in (None, "0"):
        return None
    if rest and rest[0][0] == "election" and rest[0][1] and rest[0][1].startswith('"'):
        election_id = json.loads(rest[0][1])
        inst = roots.Instance("elections", region, roots.batch_of(election_id, count))
        return inst, _render(rest)
    return roots.Instance("region", region), _render([("region", None), *rest])


def resource_address(entry: Mapping[str, Any]) -> str:
    """A state entry's address without instance keys: module.x.type.name / data.type.name."""
    kind = "data." if entry.get("mode") == "data" else ""
    local = f"{kind}{entry.get('type')}.{entry.get('name')}"
    module = entry.get("module") or ""
    return f"{module}.{local}" if module else local


def split_address(address: str) -> tuple[str, str]:
    """`module.a[0].aws_x.y` -> ("module.a[0]", "aws_x.y")."""
    m = re.match(rf"^((?:{_STEP.pattern}\.)*)", address)
    prefix = m.group(1) if m else ""
    return prefix[:-1], address[len(prefix) :]


def _dependencies(deps: Iterable[str], inst: roots.Instance, count: int) -> list[str]:
    """The dependencies that stay in `inst`, rewritten; those in other roots go
    (each root orders its own resources; the stages order the roots)."""
    kept = []
    for dep in deps:
        module, rest = split_address(dep)
        found = target_of(module, count) if module else None
        if found is not None and found[0] == inst:
            kept.append(f"{found[1]}.{rest}")
    return kept


def _provider(provider: str) -> str:
    """The single root's regional alias -> each split root's one default provider."""
    m = _ALIAS.match(provider)
    return m.group(1) if m else provider


@dataclass
class Moves:
    """The single state's resources per split instance."""

    resources: dict[roots.Instance, list[dict[str, Any]]] = field(default_factory=dict)
    dropped: int = 0  # data source entries (read again by each root)

    def counts(self) -> dict[str, int]:
        """Instance name -> managed resource instances moved to it."""
        return {
            inst.name: sum(len(r.get("instances", [])) for r in entries)
            for inst, entries in sorted(self.resources.items())
        }


def map_state(state: Mapping[str, Any], count: int) -> Moves:
    """Every managed resource of the single state, moved to its instance and new
    address; MigrationError naming every resource that maps nowhere."""
    if state.get("version") != STATE_VERSION:
        raise MigrationError(
            f"the single state is version {state.get('version')}; expected {STATE_VERSION}"
        )
    out = Moves()
    unmapped: list[str] = []
    for entry in state.get("resources") or []:
        if entry.get("mode") == "data":
            out.dropped += 1
            continue
        found = target_of(str(entry.get("module") or ""), count)
        if entry.get("mode") != "managed" or found is None:
            unmapped.append(resource_address(entry))
            continue
        inst, module = found
        moved = copy.deepcopy(dict(entry))
        moved["module"] = module
        moved["provider"] = _provider(str(entry.get("provider", "")))
        for item in moved.get("instances") or []:
            if "dependencies" in item:
                item["dependencies"] = _dependencies(item["dependencies"], inst, count)
        out.resources.setdefault(inst, []).append(moved)
    if unmapped:
        raise MigrationError(
            "these resources of the single state map to no root of the split layout; "
            "nothing was migrated: " + ", ".join(sorted(unmapped))
        )
    return out


# ------------------------------------------------------------ pure: states


def existing_lineage(state: Mapping[str, Any] | None, name: str) -> tuple[str | None, int]:
    """(lineage, serial) to write over an instance's current state: none yet ->
    (None, 1); an empty one -> its lineage, serial + 1; one with resources ->
    MigrationError (migrated already, or the split layout already applied)."""
    if not state:
        return None, 1
    if state.get("resources"):
        raise MigrationError(
            f"{name}: its state already holds resources (migrated already, or the split "
            "layout was applied); nothing was migrated"
        )
    return str(state.get("lineage") or "") or None, int(state.get("serial") or 0) + 1


def build_state(
    resources: Sequence[Mapping[str, Any]],
    terraform_version: str,
    *,
    lineage: str | None = None,
    serial: int = 1,
) -> dict[str, Any]:
    """A version-4 state holding `resources`; outputs empty (the plan after the
    push writes them)."""
    return {
        "version": STATE_VERSION,
        "terraform_version": terraform_version,
        "serial": serial,
        "lineage": lineage or str(uuid.uuid4()),
        "outputs": {},
        "resources": [dict(r) for r in resources],
        "check_results": None,
    }


def archive_name(state_path: Path, now: datetime) -> Path:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return state_path.with_name(f"{state_path.name}{ARCHIVE_SUFFIX}{stamp}")


def change_lines(results: Iterable[roots.RootResult]) -> list[str]:
    """The planned changes, per instance: addresses, counts only for the baseline."""
    lines = []
    for r in results:
        s = r.summary
        if s is None or not s.changed:
            continue
        if r.instance.root == "baseline":
            lines.append(f"{r.instance.name}: {len(s.addresses)} resource(s) would change")
            continue
        lines += [
            f"{r.instance.name}: {'/'.join(actions)} {address}"
            for address, actions in sorted(s.addresses.items())
        ]
    return lines


# ------------------------------------------------------------ the migration


@dataclass
class Report:
    counts: dict[str, int]
    dropped: int
    archived: Path | None = None
    remote: bool = False
    dry_run: bool = False

    def lines(self) -> list[str]:
        total = sum(self.counts.values())
        out = [f"{name}: {n} resource instance(s)" for name, n in self.counts.items()]
        out.append(
            f"{total} resource instance(s) in {len(self.counts)} root instance(s); "
            f"{self.dropped} data source(s) left to the roots"
        )
        if self.dry_run:
            out.append("dry run: nothing written")
        elif self.archived is not None:
            out.append(f"single state archived as {self.archived}")
        elif self.remote:
            out.append(
                "the single root's remote state was left in place: keep it as the archive, "
                "and never run the single layout on this deployment again"
            )
        return out


@dataclass
class Migration:
    """One migration of a target's single state into its split layout."""

    single: Terraform
    layout: roots.SplitLayout
    var_files: Sequence[Path]
    show: Callable[[str], None] = lambda line: None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    _pushed: list[roots.Instance] = field(default_factory=list)
    _before: set[Path] | None = None  # the instance directories there before this run

    @property
    def remote(self) -> bool:
        return declared_backend(self.single.infra_dir) != "local"

    def mapping(self) -> tuple[Moves, str]:
        self.single.init()
        state = self.single.state_pull()
        if not state or not state.get("resources"):
            raise MigrationError("the single root has no state to migrate")
        count = self.layout.batches or roots.batch_count()
        return map_state(state, count), str(state.get("terraform_version") or "")

    def run(self, *, dry_run: bool = False) -> Report:
        mapped, version = self.mapping()
        report = Report(mapped.counts(), mapped.dropped, remote=self.remote, dry_run=dry_run)
        if dry_run:
            return report
        top = self.layout.instances_dir
        self._before = set(top.iterdir()) if top.is_dir() else set()
        try:
            self._push(mapped, version)
            self._check()
        except BaseException:
            self._roll_back()
            raise
        if not self.remote and self.single.state_path is not None:
            report.archived = archive_name(self.single.state_path, self.now())
            self.single.state_path.rename(report.archived)
        return report

    def _push(self, mapped: Moves, version: str) -> None:
        ready: list[tuple[roots.Instance, Terraform, tuple[str | None, int]]] = []
        for inst in sorted(mapped.resources):
            tf = self.layout.terraform(inst)
            tf.init()
            ready.append((inst, tf, existing_lineage(tf.state_pull(), inst.name)))
        for inst, tf, (lineage, serial) in ready:
            state = build_state(mapped.resources[inst], version, lineage=lineage, serial=serial)
            path = self.layout.instance_dir(inst) / "migrated.tfstate.json"
            path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
            try:
                self._pushed.append(inst)
                tf.state_push(path)
            finally:
                path.unlink(missing_ok=True)
            self.show(f"{inst.label}: state written")

    def _check(self) -> None:
        result = self.layout.converge(self.var_files, apply=False, adopt=True)
        changes = change_lines(result.results)
        if changes:
            raise MigrationError(
                "the split roots would change these resources, so the migration was undone "
                "and the single state left in place:\n  " + "\n  ".join(changes)
            )
        missing = set(self._pushed) - {r.instance for r in result.results}
        if missing:
            names = ", ".join(sorted(i.name for i in missing))
            raise MigrationError(f"these root instances were not planned: {names}")

    def _roll_back(self) -> None:
        """Remove what this run wrote: the pushed states, the directories it made."""
        for inst in self._pushed:
            if self.remote:
                tf = self.layout.terraform(inst)
                try:
                    addresses = tf.state_addresses()
                    if addresses:
                        tf.run(["state", "rm", *addresses], stream=False)
                except TerraformError:
                    self.show(f"{inst.label}: could not empty its remote state; do it by hand")
            else:
                state = self.layout.state_path(inst)
                state.unlink(missing_ok=True)
                state.with_name(state.name + ".backup").unlink(missing_ok=True)
        top = self.layout.instances_dir
        if self._before is not None and top.is_dir():
            for path in set(top.iterdir()) - self._before:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)


def migrate(
    target: Any,
    var_files: Sequence[Path],
    *,
    dry_run: bool = False,
    log: Log = lambda line: None,
    show: Callable[[str], None] = lambda line: None,
    infra_dir: Path | None = None,
) -> Report:
    """Migrate a `targets.Target`'s single state into its split layout."""
    single = target.terraform(infra_dir=infra_dir, log=log)
    layout = roots.split_layout(target, log=log, show=show, infra_dir=infra_dir)
    return Migration(single, layout, var_files, show).run(dry_run=dry_run)
