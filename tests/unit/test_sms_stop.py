"""Issue 23, item 2: SMS STOP replies imported on a schedule from a drop folder.

The gateway's export is untrusted, names and contents alike: the numbers of a
file go to the suppression list and the file is deleted; a file with other
lines gives its numbers and waits in .rejected/ under a generated name; links,
FIFOs and uploads in progress are left alone; no name or number ever reaches a
finding."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.unit.test_scheduler import simulate

from isoloir.jobs import JOBS, JobContext, resolve
from isoloir.policy import load_policies
from isoloir.policy.model import Schedules
from isoloir.retention import keys, smsstop
from isoloir.retention.suppression import SuppressionList, db_path

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
HOSTILE = "06 39 98 00 03 \x1b[31m; rm -rf ~ \u202e.csv"


@pytest.fixture()
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(tmp_path / "secrets"))
    keys.init(tmp_path / "secrets")
    state = tmp_path / "state"
    (state / smsstop.FOLDER).mkdir(parents=True, mode=0o700)
    return state


def run(state: Path) -> list[dict[str, object]]:
    ctx = JobContext(load_policies(REPO / "policies"), state, NOW)
    return [f.to_dict() for f in resolve("sms-stop")(ctx)]


def store(state: Path) -> SuppressionList:
    return SuppressionList.for_filtering(db_path(state), keys.hmac_key(state.parent / "secrets"))


def test_dropped_stop_files_reach_the_suppression_list(world: Path, tmp_path: Path) -> None:
    drop = world / smsstop.FOLDER
    (drop / "stop-2027-03-01.txt").write_text("numero\n06 39 98 00 01\n+33 6 39 98 00 02\n")
    (drop / HOSTILE).write_text("0639980003\r\n")
    (drop / "reponses.csv").write_text("06 39 98 00 04;STOP\nmerci de ne plus m'écrire\n")
    (drop / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    outside = tmp_path / "ailleurs.txt"
    outside.write_text("06 39 98 00 09\n")
    (drop / "lien").symlink_to(outside)
    os.mkfifo(drop / "tube")
    (drop / ".envoi.part").write_text("06 39 98 00 08\n")

    found = run(world)

    with store(world) as s:
        for n in range(1, 5):
            assert s.contains(None, f"06 39 98 00 0{n}"), n
        assert not s.contains(None, "06 39 98 00 09")  # the link was not followed
        assert not s.contains(None, "06 39 98 00 08")  # an upload in progress waits
        assert s.count() == 4
    left = sorted(p.name for p in drop.iterdir())
    assert left == [".envoi.part", ".rejected", "lien", "tube"]
    rejected = sorted(p.name for p in (drop / ".rejected").iterdir())
    assert len(rejected) == 2 and all(n.startswith("20270301T090000-") for n in rejected)
    assert outside.read_text() == "06 39 98 00 09\n"
    (finding,) = found
    assert finding["rule_id"] == smsstop.RULE_REJECTED and finding["severity"] == "medium"
    assert "2 SMS STOP file(s)" in str(finding["message"])
    text = json.dumps(found)
    assert "06 39 98" not in text and "\\u001b" not in text and "reponses" not in text

    # the next run adds nothing and still reports what waits, until a person clears it
    assert [f["rule_id"] for f in run(world)] == [smsstop.RULE_REJECTED]
    for name in rejected:
        (drop / ".rejected" / name).unlink()
    assert run(world) == []


def test_an_unsafe_or_missing_folder(world: Path, tmp_path: Path) -> None:
    drop = world / smsstop.FOLDER
    (drop / "stop.txt").write_text("06 39 98 00 01\n")
    drop.chmod(0o777)
    (finding,) = run(world)
    assert finding["rule_id"] == smsstop.RULE_FOLDER and finding["severity"] == "high"
    assert "writable by every user" in str(finding["message"])
    assert (drop / "stop.txt").exists() and not db_path(world).exists()
    drop.chmod(0o700)
    (drop / "stop.txt").rename(tmp_path / "stop.txt")
    drop.rmdir()
    assert run(world) == [] and not drop.exists()  # no folder: nothing to do
    (world / smsstop.FOLDER).symlink_to(tmp_path)
    (finding,) = run(world)
    assert "symbolic link" in str(finding["message"])
    assert (tmp_path / "stop.txt").exists()


def test_the_daemon_imports_as_often_as_it_scans() -> None:
    assert JOBS["sms-stop"] == "isoloir.retention.smsstop:sms_stop_job"
    schedules = Schedules(
        scan_interval_minutes=15, identity_time="03:00", retention_time="04:00", jitter_seconds=0
    )
    started, _, _ = simulate(schedules, days=1)
    runs = [w for n, w in started if n == "sms-stop"]
    assert len(runs) == 24 * 4
    assert {b - a for a, b in zip(runs, runs[1:], strict=False)} == {timedelta(minutes=15)}
