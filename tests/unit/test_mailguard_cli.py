"""`isoloir mailguard held|release|delete` on bad input (cli-bad-input review N6):
one line naming the cause, never a traceback; Postfix's own reason shown; a
mistyped state directory refused before the queue is touched; `held` says how
old each message is and why the guard held it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.unit.test_mailguard_relay import fake_tool

from isoloir.mailguard import cli, decisions
from isoloir.mailguard.guard import Verdict

QID = "4AB12C"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_postfix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(cli, "POSTQUEUE", str(tmp_path / "nowhere" / "postqueue"))
    monkeypatch.setattr(cli, "POSTSUPER", str(tmp_path / "nowhere" / "postsuper"))
    (tmp_path / "state" / "mailguard").mkdir(parents=True)
    return tmp_path / "state"


@pytest.mark.parametrize("action", [["held"], ["release", QID], ["delete", QID]])
def test_without_postfix_one_line_says_where_to_run_it(
    no_postfix: Path, capsys: pytest.CaptureFixture[str], action: list[str]
) -> None:
    code, _, err = run([*action, "--state-dir", str(no_postfix)], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and "Postfix is not installed here" in err
    assert "relay host" in err


def test_postfix_reason_is_shown(
    no_postfix: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tool = fake_tool(
        tmp_path / "postqueue",
        "import sys\nsys.stderr.write('postqueue: fatal: Queue report unavailable - mail "
        "system is down\\n')\nsys.exit(69)\n",
    )
    monkeypatch.setattr(cli, "POSTQUEUE", str(tool))
    code, _, err = run(["held", "--state-dir", str(no_postfix)], capsys)
    assert code == 2 and "mail system is down" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "stdout", ["{not json\n", "[1, 2]\n", '{"queue_name": "hold", "arrival_time": "x"}\n']
)
def test_malformed_queue_listing_is_one_line(
    no_postfix: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdout: str,
) -> None:
    tool = fake_tool(tmp_path / "postqueue", f"import sys\nsys.stdout.write({stdout!r})\n")
    monkeypatch.setattr(cli, "POSTQUEUE", str(tool))
    code, _, err = run(["held", "--state-dir", str(no_postfix)], capsys)
    assert code == 2 and "line 1" in err and err.count("\n") == 1


@pytest.mark.parametrize("action", ["release", "delete"])
def test_a_mistyped_state_dir_is_refused_before_the_queue_is_touched(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    action: str,
) -> None:
    touched = tmp_path / "touched"
    tool = fake_tool(tmp_path / "postsuper", f"open({str(touched)!r}, 'w').write('x')\n")
    monkeypatch.setattr(cli, "POSTSUPER", str(tool))
    monkeypatch.setattr(cli, "POSTQUEUE", str(tool))
    code, _, err = run([action, QID, "--state-dir", str(tmp_path / "nostate")], capsys)
    assert code == 2 and "no mail guard state" in err
    assert not touched.exists() and not (tmp_path / "nostate").exists()


def test_held_shows_age_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    arrived = int(datetime.now(UTC).timestamp()) - 600
    entry = {"queue_name": "hold", "queue_id": QID, "arrival_time": arrived,
             "message_size": 900, "sender": "a@x.example",
             "recipients": [{"address": "b@x.example"}]}  # fmt: skip
    tool = fake_tool(tmp_path / "postqueue", f"print({json.dumps(entry)!r})\n")
    monkeypatch.setattr(cli, "POSTQUEUE", str(tool))
    verdict = Verdict(
        "hold", "attachment_outside", 250, "2.0.0", "held", election="exempleville-2027",
        counts={"recipients_outside": 1, "attachments_personal": 2},
    )  # fmt: skip
    decisions.record_held(state, QID, verdict, now=datetime.now(UTC))
    code, out, _ = run(["held", "--state-dir", str(state)], capsys)
    assert code == 0 and "@" not in out
    assert "10 min ago" in out and "exempleville-2027" in out
    assert "2 attachment(s) with personal data to 1 recipient(s) outside" in out
    code, out, _ = run(["held", "--format", "json", "--state-dir", str(state)], capsys)
    (listed,) = json.loads(out)
    assert listed["election"] == "exempleville-2027" and listed["age_minutes"] == 10
