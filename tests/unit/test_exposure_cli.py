"""`isoloir scan` options, output and exit codes (shares scope only: no network),
and the generated check table of docs/exposure.md."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from isoloir import cli
from isoloir.exposure import docs

ROOT = Path(__file__).resolve().parents[2]


def test_docs_table_is_generated_from_the_registry() -> None:
    text = (ROOT / "docs" / "exposure.md").read_text()
    assert docs.render(text) == text, "run: python -m isoloir.exposure.docs docs/exposure.md"


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    share = tmp_path / "shares" / "exempleville-2027"
    share.mkdir(parents=True)
    os.chmod(share, 0o2770)
    (tmp_path / "smb.conf").write_text(
        "[global]\n  map to guest = Never\n  server min protocol = SMB3\n"
        "  server smb encrypt = required\n"
    )
    (tmp_path / "stray").mkdir()
    return tmp_path


def _scan(tree: Path, *extra: str) -> list[str]:
    return [
        "scan", "--shares", "--config", str(ROOT / "policies"),
        "--share-root", str(tree / "shares"), "--smb-conf", str(tree / "smb.conf"),
        "--stray-path", str(tree / "stray"), "--state-dir", str(tree / "state"), *extra,
    ]  # fmt: skip


def test_exit_codes_follow_the_threshold(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(_scan(tree, "--fail-on", "high")) == 0
    capsys.readouterr()
    leak = tree / "shares" / "exempleville-2027" / "liste.txt"
    leak.write_text("a@example.org\nb@example.org\n")
    os.chmod(leak, 0o644)
    assert cli.main(_scan(tree, "--fail-on", "high", "--format", "json")) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    row = next(r for r in rows if r["resource"] == str(leak))
    assert row["severity"] == "critical" and len(row["fingerprint"]) == 32
    # the fix clears it: nothing at or above the threshold is left
    assert cli.main(_scan(tree, "--fail-on", "high", "--fix")) == 0
    out = capsys.readouterr().out
    assert "chmod o-rwx" in out and "[done]" in out and "example.org" not in out
    assert leak.stat().st_mode & 0o777 == 0o640


def test_dry_run_lists_objects_and_changes_nothing(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leak = tree / "shares" / "exempleville-2027" / "a.csv"
    leak.write_text("x\n")
    os.chmod(leak, 0o666)
    assert cli.main(_scan(tree, "--dry-run")) == 1
    out = capsys.readouterr().out
    assert "Would remediate:" in out and str(leak) in out and "[dry run]" in out
    assert leak.stat().st_mode & 0o777 == 0o666
    assert not (tree / "state").exists()


def test_errors_exit_2(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["scan", "--shares", "--config", str(tree / "nothing.json")]) == 2
    assert cli.main(_scan(tree, "--fail-on", "loud")) == 2
    bad = tree / "missing-smb.conf"
    argv = _scan(tree)
    argv[argv.index(str(tree / "smb.conf"))] = str(bad)
    assert cli.main(argv) == 2
