"""Skip Terraform when nothing it reads has changed (N9, first part).

A no-change `terraform plan` refreshes every resource: at 150 elections that was
100 s, at 577 an estimated 10-20 minutes, for a deploy that changes nothing.
After a successful apply (or a plan with no change) the deploy records a digest
of everything the plan depends on that this checkout controls:

- the variable files, in order (the rendered terraform.tfvars.json, the
  target's settings, any --var-file);
- the configuration: infra/*.tf, the provider lock file, and every file of
  infra/modules/ but the READMEs;
- the partial backend configuration file, when one is used;
- the local state's lineage and serial (so an `isoloir infra apply/destroy` or a
  state edit in between is seen), when the state is local.

and Terraform's outputs (the inventory is built from them). The next deploy
computes the digest again: equal, it reuses the outputs and runs no Terraform
command at all. Any difference, or `ISOLOIR_TF_REPLAN=1`, and it plans as
before. The record is removed before every apply or destroy, so an interrupted
apply never leaves a record that claims it finished.

What the digest cannot see is a change made outside the checkout (a bucket
policy edited in the console, a resource deleted by hand): the agents' scan
reports those, and `ISOLOIR_TF_REPLAN=1 isoloir deploy` brings them back.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isoloir.controller.infra.runner import PlanSummary, Terraform

RECORD = "applied-inputs.json"
REPLAN_ENV = "ISOLOIR_TF_REPLAN"
LOCK_FILE = ".terraform.lock.hcl"
# Bumped when what goes into the digest changes: an old record never matches.
FORMAT = 1


def replan_forced(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(REPLAN_ENV, "")
    return value.strip().lower() not in {"", "0", "false", "no"}


def module_files(modules_dir: Path) -> list[Path]:
    """The modules' files Terraform reads (READMEs and data directories aside),
    in a stable order; none when there is no such directory."""
    if not modules_dir.is_dir():
        return []
    return sorted(
        p
        for p in modules_dir.rglob("*")
        if p.is_file() and p.suffix != ".md" and ".terraform" not in p.parts
    )


def configuration_files(infra_dir: Path) -> list[Path]:
    """The files of the configuration Terraform reads, in a stable order."""
    files = sorted(infra_dir.glob("*.tf")) + sorted(infra_dir.glob("*.tf.json"))
    lock = infra_dir / LOCK_FILE
    if lock.is_file():
        files.append(lock)
    return files + module_files(infra_dir / "modules")


def state_fingerprint(state_path: Path | None) -> str:
    """The local state's lineage and serial ("" when there is no local state)."""
    if state_path is None or not state_path.is_file():
        return ""
    try:
        data = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unreadable"
    if not isinstance(data, dict):
        return "unreadable"
    return f"{data.get('lineage', '')}:{data.get('serial', '')}"


def _feed(h: Any, label: str, data: bytes) -> None:
    h.update(f"{label}\0{len(data)}\0".encode())
    h.update(data)


def digest(
    infra_dir: Path,
    var_files: Sequence[Path],
    *,
    backend_config: Path | None = None,
    state_path: Path | None = None,
    extra: Iterable[tuple[str, str]] = (),
) -> str:
    """sha256 over the plan's inputs (see the module's docstring)."""
    h = hashlib.sha256(f"isoloir-tf-inputs/{FORMAT}\0".encode())
    for i, f in enumerate(var_files):
        _feed(h, f"var-file/{i}", Path(f).read_bytes())
    for f in configuration_files(infra_dir):
        _feed(h, f"config/{f.relative_to(infra_dir).as_posix()}", f.read_bytes())
    if backend_config is not None:
        _feed(h, "backend-config", backend_config.read_bytes())
    _feed(h, "state", state_fingerprint(state_path).encode())
    for key, value in sorted(extra):
        _feed(h, f"extra/{key}", value.encode())
    return h.hexdigest()


class InputsRecord:
    """The digest of the last successful apply and its outputs, in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> InputsRecord:
        return cls(state_dir / RECORD)

    def outputs_if_unchanged(self, current: str) -> dict[str, Any] | None:
        """The recorded outputs when the recorded digest is `current`, else None."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or data.get("digest") != current
            or not isinstance(data.get("outputs"), dict)
        ):
            return None
        outputs: dict[str, Any] = data["outputs"]
        return outputs

    def write(self, current: str, outputs: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = json.dumps(
            {"format": FORMAT, "digest": current, "outputs": dict(outputs)},
            indent=2,
            sort_keys=True,
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body + "\n")
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class Converged:
    """What `converge` did: skipped (inputs unchanged), or planned and maybe applied."""

    skipped: bool
    outputs: dict[str, Any]
    summary: PlanSummary | None = None

    @property
    def changes(self) -> int:
        s = self.summary
        return 0 if s is None else s.add + s.change + s.destroy


def tf_digest(tf: Terraform, var_files: Sequence[Path]) -> str:
    """`digest` of `tf`'s configuration, backend and (local) state."""
    return digest(
        tf.infra_dir,
        var_files,
        backend_config=tf.backend_config,
        state_path=tf.state_path if tf.backend_config is None else None,
    )


def converge(
    tf: Terraform,
    var_files: Sequence[Path],
    plan_file: Path,
    *,
    show: Callable[[str], None] = lambda line: None,
    force: bool | None = None,
) -> Converged:
    """The deploy's Terraform step: skip when the inputs match the record, else
    init, plan, apply when the plan changes something, then record the inputs
    and the outputs. `force` (default: $ISOLOIR_TF_REPLAN) always plans."""
    record = InputsRecord.in_state_dir(tf.data_dir.parent)
    forced = replan_forced() if force is None else force
    recorded = None if forced else record.outputs_if_unchanged(tf_digest(tf, var_files))
    if recorded is not None:
        show(
            "Terraform inputs unchanged since the last apply: skipped "
            f"(no plan, no refresh; {REPLAN_ENV}=1 forces a plan)"
        )
        return Converged(True, recorded)
    try:
        show("terraform init")
        tf.init()
        show("terraform plan (reads every resource back: a minute or two)")
        _, summary = tf.plan(var_files, plan_file)
        show(summary.line())
        for address, actions in sorted(summary.addresses.items()):
            show(f"  {'/'.join(actions):16} {address}")
        if summary.changed:
            show("terraform apply")
            tf.apply(plan_file)
        outputs = tf.output()
    finally:
        plan_file.unlink(missing_ok=True)
    # after the apply: the state's new serial is part of the inputs
    record.write(tf_digest(tf, var_files), outputs)
    return Converged(False, outputs, summary)
