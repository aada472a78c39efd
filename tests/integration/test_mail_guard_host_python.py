"""The mail guard's unit tests on the hosts' own interpreter (security N3).

The hosts build the agents' venv from Debian 12's /usr/bin/python3, whose
email.utils is strict (the CVE-2023-27043 fix): a rule that counts what
`getaddresses` returns counts 0 there for a header with one typo, while the
development venv (another 3.11) counts 50. So the guard's unit tests also run
inside the converged sandbox host, with the venv the guard itself runs from
(/opt/isoloir/venv, made from the tree's Debian python3). pytest and hypothesis
are pure Python: their installed files are copied next to the tests and
appended to sys.path (the venv's own packages win).
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import pytest
from tests.plugins.hosts import REPO, Site

pytestmark = [pytest.mark.integration, pytest.mark.root]

VENV_PYTHON = "/opt/isoloir/venv/bin/python"
WORK = "var/tmp/isoloir-host-python"
# What the guard's unit tests import beyond the agents' own venv.
TEST_DISTRIBUTIONS = (
    "pytest",
    "pluggy",
    "iniconfig",
    "packaging",
    "pygments",
    "hypothesis",
    "attrs",
    "sortedcontainers",
)
BOOTSTRAP = """
import sys
sys.path.append({lib!r})
sys.path.insert(0, {work!r})
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--noconftest", *sys.argv[1:]]))
"""


def copy_distribution(name: str, lib: Path) -> None:
    dist = importlib.metadata.distribution(name)
    for entry in dist.files or ():
        source = Path(str(dist.locate_file(entry)))
        if entry.parts[0] in ("..",) or not source.is_file() or "__pycache__" in entry.parts:
            continue
        target = lib / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


@pytest.fixture(scope="module")
def on_host(site: Site) -> Path:
    assert site.runs and site.runs[0].returncode == 0, site.runs[0].stdout[-3000:]
    work = site.host.root / WORK
    shutil.rmtree(work, ignore_errors=True)
    (work / "tests" / "unit").mkdir(parents=True)
    for name in ("test_mailguard_*.py", "test_alerts_logic.py"):
        for source in (REPO / "tests" / "unit").glob(name):
            shutil.copyfile(source, work / "tests" / "unit" / source.name)
    shutil.copytree(REPO / "policies", work / "policies")
    for name in TEST_DISTRIBUTIONS:
        copy_distribution(name, work / "lib")
    (work / "run.py").write_text(BOOTSTRAP.format(lib=f"/{WORK}/lib", work=f"/{WORK}"))
    return work


def test_the_guard_runs_on_debian_python_whose_email_utils_is_strict(
    site: Site, on_host: Path
) -> None:
    probe = site.host.chroot(
        VENV_PYTHON,
        "-c",
        "import sys, email.utils; print(sys.base_prefix, sys.version.split()[0]);"
        " print(email.utils.getaddresses(['a@x.fr, b@y.fr, jean@x.fr;']))",
    )
    prefix, version = probe.stdout.splitlines()[0].split()
    assert prefix == "/usr" and version == "3.11.2", probe.stdout
    # Debian's strict parser: the whole header gives nothing. The guard must not use it.
    assert probe.stdout.splitlines()[1] == "[('', '')]", probe.stdout
    package = site.host.chroot("dpkg-query", "-W", "-f", "${Version}", "python3.11").stdout
    assert package.startswith("3.11.2-6+deb12u"), package


# The controller (deploy, inventory) is not part of the hosts' wheel: its test in
# the guard's module runs in the development venv only.
CONTROLLER_ONLY = (
    "tests/unit/test_mailguard_relay.py::test_the_local_target_relays_to_its_sink_never_to_an_mx",
)


def test_mail_guard_unit_tests_pass_on_the_hosts_interpreter(site: Site, on_host: Path) -> None:
    modules = sorted(p.name for p in (on_host / "tests" / "unit").glob("test_mailguard_*.py"))
    assert "test_mailguard_addresses.py" in modules and len(modules) >= 7
    absent = site.host.chroot(VENV_PYTHON, "-c", "import isoloir.controller", check=False)
    assert absent.returncode != 0  # so the deselected test could not run there
    argv = [f"tests/unit/{m}" for m in modules] + [f"--deselect={t}" for t in CONTROLLER_ONLY]
    run = site.host.chroot(
        "sh",
        "-c",
        f"cd /{WORK} && exec {VENV_PYTHON} run.py " + " ".join(argv),
        check=False,
        timeout=600,
    )
    tail = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and "skipped" not in run.stdout, tail
    assert f"{len(CONTROLLER_ONLY)} deselected" in run.stdout, tail
    assert "failed" not in run.stdout and "error" not in run.stdout.lower(), tail
