"""Session-wide test rules.

In CI (CI=true) a skipped test is a failure: a test that needs root, the
sandbox host or Terraform must run there.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.plugins.commands", "tests.plugins.emulator", "tests.plugins.sandbox"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which is a failure here: {reason}"
