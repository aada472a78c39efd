"""The contract between the agents and the daemon.

An agent exposes job functions `job(ctx) -> list[Finding]`. The daemon (or
`isoloir run --once`) calls them on schedule and hands the findings to the
alerting, which de-duplicates them and notices when one disappears (resolved)
within the same job's scope. Jobs are registered by name in JOBS so the daemon
never imports an agent by hand.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from isoloir.findings import Finding
from isoloir.policy.model import Policies


@dataclass(frozen=True)
class JobContext:
    policies: Policies
    state_dir: Path
    now: datetime
    dry_run: bool = False
    fix: bool = True  # apply the remediations the policies allow


JobFunc = Callable[[JobContext], list[Finding]]

# job name -> "module:function"
JOBS: dict[str, str] = {
    "scan": "isoloir.exposure.jobs:scan_job",
    "identity": "isoloir.exposure.jobs:identity_job",
    "retention": "isoloir.retention.jobs:retention_job",
}


def resolve(name: str) -> JobFunc:
    module_name, _, func_name = JOBS[name].partition(":")
    func: JobFunc = getattr(importlib.import_module(module_name), func_name)
    return func
