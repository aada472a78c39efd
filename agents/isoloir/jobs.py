"""The contract between the agents and the daemon.

An agent exposes job functions `job(ctx) -> list[Finding]`. The daemon (or
`isoloir run --once`) calls them on schedule and hands the findings to the
alerting, which de-duplicates them and notices when one disappears (resolved)
within the same job's scope. Jobs are registered by name in JOBS so the daemon
never imports an agent by hand.

A job that could not read part of its world returns a `JobResult` (a list of
findings that also says what was not read, and whether the run failed): the
alerting then resolves only what was observed, and the run is recorded as
failed when a whole scope could not be read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from isoloir.findings import Finding, Unread
from isoloir.policy.model import Policies


@dataclass(frozen=True)
class JobContext:
    policies: Policies
    state_dir: Path
    now: datetime
    dry_run: bool = False
    fix: bool = True  # apply the remediations the policies allow


class JobResult(list[Finding]):
    """A job's findings, with what it could not read and why the run failed.

    It is a list of findings, so a caller that only wants the findings iterates it.
    `failure` is set when a whole scope could not be read: the run counts as failed
    (`run --once` exits 1, runs.json ok=false), its observed findings are still
    processed, and nothing under `unread` is resolved.
    """

    def __init__(
        self, findings: Iterable[Finding] = (), *, unread: Unread | None = None, failure: str = ""
    ) -> None:
        super().__init__(findings)
        self.unread = unread or Unread()
        self.failure = failure


JobFunc = Callable[[JobContext], list[Finding]]

# job name -> "module:function"
JOBS: dict[str, str] = {
    "scan": "isoloir.exposure.jobs:scan_job",
    "identity": "isoloir.exposure.jobs:identity_job",
    "retention": "isoloir.retention.jobs:retention_job",
    "rights": "isoloir.dpo.requests:rights_job",
    "sms-stop": "isoloir.retention.smsstop:sms_stop_job",
}


def resolve(name: str) -> JobFunc:
    module_name, _, func_name = JOBS[name].partition(":")
    func: JobFunc = getattr(importlib.import_module(module_name), func_name)
    return func
