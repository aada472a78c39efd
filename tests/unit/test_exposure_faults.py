"""Faults never make the exposure agent lie: what was not read is neither reported,
fixed nor announced resolved, and the run that could not read fails visibly.

AWS runs in-process (moto's mock_aws); an outage is the client pointed at a closed
loopback port for one cycle.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from moto import mock_aws
from tests.moto_env import use_in_process_aws

from isoloir import aws, cli
from isoloir.alerts.spool import Spool, spool_path
from isoloir.daemon import EXIT_JOB_FAILED, EXIT_OK, run_job_once, runs_path
from isoloir.exposure import registry
from isoloir.exposure.model import Bucket, Inventory, S3Inventory
from isoloir.exposure.scan import ScanOptions, run
from isoloir.policy import load_policies
from isoloir.policy.model import Policies

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    use_in_process_aws(monkeypatch)
    monkeypatch.setattr(aws, "_RETRIES", {"max_attempts": 1, "mode": "standard"})


def _outage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISOLOIR_AWS_ENDPOINT", f"http://127.0.0.1:{_dead_port()}")


@pytest.fixture()
def policies(tmp_path: Path) -> Policies:
    """The example policies: share in a temp dir, no stray path, no automatic fix."""
    p = load_policies(ROOT / "policies")
    share = tmp_path / "shares" / p.elections[0].id
    share.mkdir(parents=True)
    share.chmod(0o2770)
    elections = tuple(dataclasses.replace(e, share_path=str(share)) for e in p.elections)
    rem = dataclasses.replace(
        p.baseline.remediation,
        s3_public_access_block=False,
        s3_public_grants=False,
        share_permissions=False,
        share_group_ownership=False,
    )
    hosts = dataclasses.replace(p.baseline.hosts, stray_data_paths=())
    base = dataclasses.replace(p.baseline, remediation=rem, hosts=hosts)
    return dataclasses.replace(p, baseline=base, elections=elections)


@pytest.fixture()
def world(aws_env: None, policies: Policies) -> Iterator[Policies]:
    """A bucket with its public access block off, an IAM user without MFA."""
    with mock_aws():
        s3 = aws.client("s3")
        s3.create_bucket(
            Bucket=policies.elections[0].bucket_name,
            CreateBucketConfiguration={"LocationConstraint": "eu-west-3"},
        )
        iam = aws.client("iam")
        iam.create_user(UserName="intrus")
        iam.create_login_profile(UserName="intrus", Password="Fiction-0199001234!")
        yield policies


# -- the fault test: S3 and IAM unreachable for one cycle, then back ---------------


def _rows(state: Path) -> dict[str, tuple[str, float]]:
    spool = Spool(spool_path(state))
    try:
        rows = spool.db.execute("SELECT fingerprint, state, first_seen FROM findings").fetchall()
        return {r["fingerprint"]: (r["state"], r["first_seen"]) for r in rows}
    finally:
        spool.close()


def _kinds(state: Path) -> list[str]:
    spool = Spool(spool_path(state))
    try:
        return [r[0] for r in spool.db.execute("SELECT kind FROM outbox").fetchall()]
    finally:
        spool.close()


def _cycle(policies: Policies, state: Path) -> tuple[int, int]:
    return (
        run_job_once("scan", policies, state, flush=False),
        run_job_once("identity", policies, state, flush=False),
    )


def test_outage_for_one_cycle_resolves_nothing_and_keeps_first_seen(
    world: Policies, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setattr("isoloir.exposure.scan.DEFAULT_SMB_CONF", str(tmp_path / "no-smb.conf"))
    assert _cycle(world, state) == (EXIT_OK, EXIT_OK)
    before = _rows(state)
    rules = {json.loads(r[0])["rule_id"] for r in _finding_json(state)}
    assert {"s3_bucket_public_access_block", "s3_account_public_access_block"} <= rules
    assert "iam_user_no_mfa" in rules
    alerts_before = _kinds(state).count("alert")

    with monkeypatch.context() as m:
        _outage(m)
        assert _cycle(world, state) == (EXIT_JOB_FAILED, EXIT_JOB_FAILED)
    runs = json.loads(runs_path(state).read_text())
    assert runs["scan"]["ok"] is False and "s3:sts" in runs["scan"]["detail"]
    assert runs["identity"]["ok"] is False and "iam:ListUsers" in runs["identity"]["detail"]
    assert _rows(state) == before  # all still open, first-seen unchanged
    assert "resolved" not in _kinds(state)

    assert _cycle(world, state) == (EXIT_OK, EXIT_OK)
    assert {fp: v for fp, v in _rows(state).items() if fp in before} == before
    assert "resolved" not in _kinds(state)
    assert _kinds(state).count("alert") == alerts_before  # nothing re-announced as new


def _finding_json(state: Path) -> list[tuple[str]]:
    spool = Spool(spool_path(state))
    try:
        return [tuple(r) for r in spool.db.execute("SELECT finding FROM findings").fetchall()]
    finally:
        spool.close()


# -- nothing that was not read is reported or fixed --------------------------------


def test_unreachable_aws_reports_and_fixes_nothing(
    aws_env: None, policies: Policies, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _outage(monkeypatch)
    rem = dataclasses.replace(policies.baseline.remediation, s3_public_access_block=True)
    pol = dataclasses.replace(
        policies, baseline=dataclasses.replace(policies.baseline, remediation=rem)
    )
    report = run(
        pol, NOW, ScanOptions(s3=True, shares=False, identity=False), fix=True, state_dir=tmp_path
    )
    assert report.findings == [] and report.actions == []
    # Nobody answered STS: nothing else was asked, every S3 rule is unread.
    assert set(report.fatal) == {"s3:sts"} and "no answer from" in report.fatal["s3:sts"]
    assert "s3_account_public_access_block" in report.unread.rules
    assert "s3_bucket_public_acl" in report.unread.rules


def _s3_hits(pol: Policies, s3: S3Inventory) -> set[str]:
    inv = Inventory(policies=pol, now=NOW, s3=s3)
    return {r.finding.rule_id for r in registry.run(inv, scopes=["s3"])}


def test_checks_never_take_unread_for_off(policies: Policies) -> None:
    name = policies.elections[0].bucket_name
    # no account id: the account block was never read
    assert _s3_hits(policies, S3Inventory(errors={"sts": "EndpointConnectionError"})) == set()
    # a bucket whose location failed was not read at all: no "no encryption", "no
    # versioning", "no lifecycle", "accepts ACLs" made of its empty fields
    unread = Bucket(name=name, errors={"location": "AccessDenied"})
    assert _s3_hits(policies, S3Inventory(account_id="1", buckets=[unread])) == {
        "s3_account_public_access_block"
    }
    # public policy, account block unread: it may be neutralised, so not reported
    public = Bucket(
        name=name,
        region="eu-west-3",
        policy={"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]},
        public_access_block=None,
    )
    s3 = S3Inventory(account_id="1", buckets=[public], errors={"account_public_access_block": "X"})
    hits = _s3_hits(policies, s3)
    assert not hits & {
        "s3_bucket_policy_public", "s3_bucket_public_access_block", "s3_account_public_access_block"
    }  # fmt: skip
    # the same, read: reported
    read = S3Inventory(account_id="1", buckets=[public])
    assert {"s3_bucket_policy_public", "s3_bucket_public_access_block"} <= _s3_hits(policies, read)


def test_identity_scan_with_iam_unreadable_says_incomplete(
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _outage(monkeypatch)
    (tmp_path / "group").write_text("")
    (tmp_path / "passwd").write_text("")
    argv = [
        "scan", "--identity", "--config", str(ROOT / "policies"), "--state-dir", str(tmp_path),
        "--group-file", str(tmp_path / "group"), "--passwd-file", str(tmp_path / "passwd"),
    ]  # fmt: skip
    assert cli.main(argv) == 2
    out = capsys.readouterr().out
    assert "No findings." not in out
    assert "incomplete: could not read identity:iam:ListUsers" in out


def test_a_black_holed_endpoint_is_bounded_and_announced(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from botocore.exceptions import BotoCoreError

    hole = socket.socket()  # accepts connections (backlog), never answers
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    try:
        monkeypatch.setenv("ISOLOIR_AWS_ENDPOINT", f"http://127.0.0.1:{hole.getsockname()[1]}")
        monkeypatch.setattr(aws, "READ_TIMEOUT", 1)
        monkeypatch.setattr(aws, "SLOW_CALL_SECONDS", 0.3)
        started = time.monotonic()
        with pytest.raises(BotoCoreError):
            aws.client("sts").get_caller_identity()
        assert time.monotonic() - started < 15
    finally:
        hole.close()
    assert "waiting for sts (GetCallerIdentity)" in capsys.readouterr().err


def test_a_black_holed_endpoint_fails_the_whole_scan_after_one_probe(
    aws_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CLI review D32: `scan` against an endpoint that never answers took 242 s (three
    calls, each 3 attempts of 20 s). The first call now probes with tight bounds and
    nothing else is asked: S3 and IAM are said unreadable in one clear line."""
    import time

    hole = socket.socket()  # accepts connections (backlog), never answers
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    (tmp_path / "group").write_text("")
    (tmp_path / "passwd").write_text("")
    try:
        monkeypatch.setenv("ISOLOIR_AWS_ENDPOINT", f"http://127.0.0.1:{hole.getsockname()[1]}")
        monkeypatch.setattr(aws, "PROBE_READ_TIMEOUT", 1)
        monkeypatch.setattr(aws, "SLOW_CALL_SECONDS", 30)
        # Any call made with the ordinary bounds would wait 20 s at least.
        assert aws.READ_TIMEOUT >= 20
        started = time.monotonic()
        argv = [
            "scan", "--s3", "--identity", "--config", str(ROOT / "policies"),
            "--state-dir", str(tmp_path),
            "--group-file", str(tmp_path / "group"), "--passwd-file", str(tmp_path / "passwd"),
        ]  # fmt: skip
        assert cli.main(argv) == 2
        elapsed = time.monotonic() - started
    finally:
        hole.close()
    assert elapsed < 15, elapsed
    out, err = capsys.readouterr()
    assert "No findings (incomplete: could not read identity:iam:ListUsers, s3:sts)." in out
    assert "could not read s3:sts: no answer from http://127.0.0.1:" in err
    assert "ReadTimeoutError, 2 attempts" in err and "nothing else was asked" in err
