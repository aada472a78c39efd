"""A corrupt state file is named with what to do, never a traceback nor "never run" (CLI N5).

Each state file of the agents is overwritten as a crash or a full disk leaves
it (random bytes, truncated JSON, odd values); the commands an administrator
or a monitor runs must say which file, and exit 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from isoloir.alerts.spool import Spool, spool_path
from isoloir.cli import main
from isoloir.exposure import remediate
from isoloir.retention import keys
from isoloir.retention.journal import Journal
from isoloir.retention.suppression import SuppressionList
from isoloir.statefiles import StateError

REPO = Path(__file__).resolve().parents[2]
GARBAGE = os.urandom(4096)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    (path / "daemon").mkdir(parents=True)
    return path


def status(state: Path, *extra: str) -> int:
    return main(["status", "--state-dir", str(state), *extra])


def test_a_corrupt_spool_is_named_by_status_and_flush(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool_path(state).write_bytes(GARBAGE)
    assert status(state) == 2
    err = capsys.readouterr().err
    assert f"error: {spool_path(state)}: not a usable SQLite database" in err
    assert "Traceback" not in err and "move it aside" in err
    assert status(state, "--json") == 2
    out = capsys.readouterr().out
    assert json.loads(out)["unreadable"]
    rendered = state.parent / "rendered"
    assert (
        main(["policy", "render", "--policies", str(REPO / "policies"), "--out", str(rendered)])
        == 0
    )
    capsys.readouterr()
    config = str(rendered / "agent" / "agent.json")
    assert main(["alerts", "flush", "--state-dir", str(state), "--config", config]) == 2
    assert f"error: {spool_path(state)}: not a usable SQLite database" in capsys.readouterr().err
    with pytest.raises(StateError, match="alerts.sqlite"):
        Spool(spool_path(state))


@pytest.mark.parametrize(
    "content",
    [
        '{"scan": {"ok": true, "finished": 17',  # truncated
        "[1, 2]",
        '{"scan": {"ok": true, "finished": "yesterday"}}',
        '{"scan": "ok"}',
    ],
)
def test_an_unreadable_runs_json_never_reads_as_never_run(
    state: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (state / "daemon" / "runs.json").write_text(content)
    assert status(state, "--lang", "en") == 2
    captured = capsys.readouterr()
    assert "runs.json" in captured.err and "Traceback" not in captured.err
    if "never run" in captured.out:  # only for jobs the readable part does not name
        assert "job scan: never run" not in captured.out


def test_a_heartbeat_with_an_infinite_time_or_escapes_is_refused_or_escaped(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    heartbeat = state / "daemon" / "heartbeat.json"
    heartbeat.write_text('{"pid": 1, "ts": 1e400, "state": "idle"}')
    assert status(state, "--lang", "en") == 2
    captured = capsys.readouterr()
    assert "heartbeat.json: not a heartbeat" in captured.err and "-inf" not in captured.out
    heartbeat.write_text(json.dumps({"pid": 1, "ts": 1.0, "state": "idle\x1b[2J\x1b[31m"}))
    assert status(state, "--lang", "en") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_corrupt_retention_journal_suppression_list_and_exposure_journal_are_named(
    tmp_path: Path, state: Path
) -> None:
    journal = state / "retention" / "journal.sqlite"
    journal.parent.mkdir()
    journal.write_bytes(GARBAGE)
    with pytest.raises(StateError, match=f"{journal}: not a usable SQLite database"):
        Journal(journal)
    keys.init(tmp_path / "secrets")
    listed = state / "retention" / "suppression.sqlite"
    listed.write_bytes(GARBAGE)
    with pytest.raises(StateError, match="restore it from a backup"):
        SuppressionList(listed, keys.hmac_key(tmp_path / "secrets"))
    (state / remediate.JOURNAL).write_bytes(GARBAGE)
    with pytest.raises(remediate.JournalError, match="exposure-journal.sqlite: not a usable"):
        remediate.Journal(state)


def test_retention_plan_names_the_corrupt_journal(
    tmp_path: Path, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = state / "retention" / "journal.sqlite"
    journal.parent.mkdir()
    journal.write_bytes(GARBAGE)
    rc = main(["retention", "plan", "--state-dir", str(state), "--config", str(REPO / "policies")])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"error: {journal}: not a usable SQLite database" in err and "Traceback" not in err


def test_a_deeply_nested_certificate_is_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = tmp_path / "cert.json"
    cert.write_text("[" * 200_000)
    keys.init(tmp_path / "secrets")
    from isoloir.retention import certificate

    public = keys.signing_key(tmp_path / "secrets").public_key()
    certificate.write_public_key(tmp_path, public)
    for command in ("verify", "show"):
        assert main(["certificate", command, str(cert)]) == 1
        err = capsys.readouterr().err
        assert "not a JSON document" in err and "Traceback" not in err


# ------------------------------------------------ root in the agents' state (security N11)
def test_root_never_writes_into_the_agents_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root, `suppression add` made a root-owned 0600 list: the mail guard (the agents'
    user) then deferred every message and the purge failed. Refused, naming the user."""
    assert os.geteuid() == 0  # as `make test` runs
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 61001, 61001)
    keys.init(tmp_path / "secrets")
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(tmp_path / "secrets"))
    policies = str(REPO / "policies")
    commands = [
        ["suppression", "add", "--state-dir", str(state), "x@exemple.example"],
        ["retention", "run", "--state-dir", str(state), "--config", policies],
        [
            "retention",
            "accept-loss",
            "--state-dir",
            str(state),
            "--config",
            policies,
            "--election",
            "exempleville-2027",
            "--dataset",
            "prospects",
            "--all",
        ],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "belongs to 61001" in err and "sudo -u 61001" in err, err
    assert list(state.iterdir()) == []  # nothing created


def test_a_folder_named_like_a_redaction_is_redacted_too() -> None:
    """Security N12: any string starting `hmac:` was kept in clear."""
    from isoloir.retention.journal import redact_value

    key = b"k" * 32
    payload = {"files": [["hmac:/Dupont Marie.csv", 12, False]]}
    redacted = redact_value(payload, key)
    assert "Dupont" not in json.dumps(redacted)
    assert redact_value(redacted, key) == redacted  # still idempotent
