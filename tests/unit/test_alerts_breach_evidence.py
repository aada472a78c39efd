"""Breach evidence in the alerts: reads by outsiders counted from the exposure's start
(the open finding's first-seen time), said in French and English, and a new alert
when a first outside read appears."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from tests.moto_env import use_in_process_aws

from isoloir import aws
from isoloir.alerts import messages
from isoloir.alerts.service import AlertService, exposure_starts
from isoloir.alerts.spool import spool_path
from isoloir.alerts.transport import Outgoing
from isoloir.exposure import accesslog, inventory_s3, jobs
from isoloir.exposure.scan import ScanOptions
from isoloir.findings import Finding, Severity
from isoloir.jobs import JobContext, JobResult
from isoloir.policy import load_policies
from isoloir.policy.model import Policies, Route

ROOT = Path(__file__).resolve().parents[2]
ELECTION = "exempleville-2027"
ACCOUNT = "123456789012"
OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
OUTSIDER = "arn:aws:iam::999988887777:user/visiteur"
IP = "192.0.2.44"
BUCKET = f"mouvement-exemple-{ELECTION}"
KEY = "porte-a-porte/liste.csv"
SINCE = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)


def _log(bucket: str, key: str, when: datetime, requester: str) -> str:
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (
        f"{OWNER} {bucket} [{stamp}] {IP} {requester} 3E57427F3EXAMPLE REST.GET.OBJECT {key} "
        f'"GET /{bucket}/{key} HTTP/1.1" 200 - 1024 1024 7 6 "-" "curl/8.0" - '
        "s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3= SigV4 "
        f"ECDHE-RSA-AES128-GCM-SHA256 AuthHeader {bucket}.s3.eu-west-3.amazonaws.com "
        "TLSv1.2 - - eu-west-3"
    )


def _evidence(*minutes_and_requesters: tuple[int, str]) -> dict[str, Any]:
    """Evidence as inventory_s3 builds it, from real log lines (IP and requester ids in)."""
    lines = [_log(BUCKET, KEY, SINCE + timedelta(minutes=m), r) for m, r in minutes_and_requesters]
    lines.append(_log(BUCKET, "autre.csv", SINCE + timedelta(hours=2), "-"))  # newest log time
    batch = accesslog.LogBatch(records=accesslog.parse(lines).records)
    ev = accesslog.evidence_for(batch, BUCKET, KEY, SINCE, ACCOUNT)
    return {"public_grants": 1, **ev, "reads_since": SINCE.isoformat()}


def _finding(evidence: dict[str, Any], **kw: Any) -> Finding:
    base: dict[str, Any] = {
        "rule_id": "s3_object_public_acl",
        "severity": Severity.CRITICAL,
        "resource": f"s3://{BUCKET}/{KEY}",
        "message": f"Object s3://{BUCKET}/{KEY} is public through its ACL.",
        "election": ELECTION,
        "location": "eu-west-3",
        "remediation": "Reset the object ACL to private.",
        "evidence": evidence,
    }
    base.update(kw)
    return Finding(**base)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def send(self, message: Outgoing) -> None:
        self.sent.append(message)


def _policies(language: str = "fr") -> Policies:
    p = load_policies(ROOT / "policies")
    alerts = dataclasses.replace(
        p.baseline.alerts,
        webhooks=(),
        routes=(Route(("cfictive",), ("email",), "medium", ("*",)),),
        language=language,
        renotify_hours=24,
    )
    return dataclasses.replace(p, baseline=dataclasses.replace(p.baseline, alerts=alerts))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[AlertService, Clock, Recorder]]:
    clock, email = Clock(), Recorder()
    svc = AlertService(
        _policies(), tmp_path, transports={"email": email}, time_source=clock, rng=random.Random(1)
    )
    yield svc, clock, email
    svc.close()


# ---------------------------------------------------------------- the sentence


def test_reads_sentence_in_french_and_english() -> None:
    ev = _evidence((-30, OUTSIDER), (20, "-"), (40, OUTSIDER), (50, f"arn:aws:iam::{ACCOUNT}:u"))
    f = _finding(ev)
    fr = messages.render_finding(f, "fr", first_seen=SINCE).body
    en = messages.render_finding(f, "en", first_seen=SINCE).body
    assert (
        "Lectures : lu 2 fois par 2 demandeur(s) extérieur(s) depuis le 01/03/2027 10:00 UTC "
        "(journaux lus jusqu'au 01/03/2027 12:00 UTC)"
    ) in fr
    assert (
        "Reads: read 2 times by 2 outside requesters since 2027-03-01 10:00 UTC "
        "(logs read until 2027-03-01 12:00 UTC)"
    ) in en


def test_no_read_sentence_in_french_and_english() -> None:
    f = _finding(_evidence((-30, OUTSIDER), (20, f"arn:aws:iam::{ACCOUNT}:user/tresorier")))
    fr = messages.render_finding(f, "fr", first_seen=SINCE).body
    en = messages.render_finding(f, "en", first_seen=SINCE).body
    assert (
        "Lectures : aucune lecture trouvée dans les journaux depuis le 01/03/2027 10:00 UTC "
        "(journaux lus jusqu'au 01/03/2027 12:00 UTC)"
    ) in fr
    assert (
        "Reads: no read found in the logs since 2027-03-01 10:00 UTC "
        "(logs read until 2027-03-01 12:00 UTC)"
    ) in en


def test_unread_logs_are_never_taken_for_no_read() -> None:
    off = {"logs_read_until": "none", "access_logging": False, "reads_since": SINCE.isoformat()}
    body = messages.render_finding(_finding(off), "en", first_seen=SINCE).body
    assert "Reads: access logs not read: no read can be ruled out since 2027-03-01 10:00" in body
    assert "no read found" not in body
    # a finding without log evidence (not an S3 exposure) has no such line
    plain = messages.render_finding(_finding({"x": 1}), "fr", first_seen=SINCE).body
    assert "Lectures" not in plain


def test_breach_register_draft_block_says_the_reads() -> None:
    ev = _evidence((20, OUTSIDER))
    ev["breach_register_draft"] = {
        "nature": "loss of confidentiality: object readable by anyone on the internet",
        "data_categories": ["phone numbers", "email addresses"],
        "inform_data_subjects": False,
    }
    body = messages.render_finding(_finding(ev), "fr", first_seen=SINCE).body
    block = body.split("Brouillon pour le registre des violations :\n", 1)[1]
    assert "  - Catégories de données : numéros de téléphone, adresses électroniques\n" in block
    assert "  - Informer les personnes concernées : non\n" in block
    assert "  - Lectures : lu 1 fois par 1 demandeur(s) extérieur(s) depuis le 01/03/2027" in block
    assert "{'nature'" not in body  # no Python value printed


# ---------------------------------------------------------------- re-sending


def test_first_outside_read_resends_the_alert_and_growth_does_not(
    service: tuple[AlertService, Clock, Recorder],
) -> None:
    svc, clock, email = service
    svc.process("scan", [_finding(_evidence((20, f"arn:aws:iam::{ACCOUNT}:user/t")))])
    svc.flush()
    assert len(email.sent) == 1 and "aucune lecture trouvée" in email.sent[0].body
    clock.t += 600
    svc.process("scan", [_finding(_evidence((20, f"arn:aws:iam::{ACCOUNT}:user/t")))])
    svc.flush()
    assert len(email.sent) == 1  # nothing new: de-duplicated
    clock.t += 600
    report = svc.process("scan", [_finding(_evidence((30, OUTSIDER)))])
    svc.flush()
    assert report.new == 1 and report.reminders == 0
    assert len(email.sent) == 2
    again = email.sent[1]
    assert again.kind == "alert" and again.subject.startswith("[Isoloir] Alerte")
    assert "lu 1 fois par 1 demandeur(s) extérieur(s)" in again.body
    clock.t += 600
    report = svc.process("scan", [_finding(_evidence((30, OUTSIDER), (40, "-"), (50, "-")))])
    svc.flush()
    assert report.new == 0 and report.reminders == 0
    assert len(email.sent) == 2  # the count grew: no new message


def test_no_ip_or_requester_id_in_any_message(
    service: tuple[AlertService, Clock, Recorder],
) -> None:
    svc, clock, email = service
    svc.process("scan", [_finding(_evidence((-10, "-")))])  # before the exposure
    clock.t += 600
    svc.process("scan", [_finding(_evidence((10, OUTSIDER), (20, OUTSIDER)))])
    svc.flush()
    assert len(email.sent) == 2
    for message in email.sent:
        text = message.subject + message.body + json.dumps(message.payload)
        for secret in (IP, OUTSIDER, "999988887777", "visiteur", OWNER):
            assert secret not in text


# ---------------------------------------------------------------- the log window


def test_scan_job_passes_the_open_findings_first_seen(
    service: tuple[AlertService, Clock, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, clock, _ = service
    bucket_finding = _finding({}, rule_id="s3_bucket_policy_public", resource=f"s3://{BUCKET}")
    svc.process("scan", [_finding({}), bucket_finding])
    first = clock.t
    clock.t += 3600
    svc.process("scan", [_finding({}), bucket_finding, _finding({}, resource="/srv/x.csv")])
    seen: list[ScanOptions] = []

    def fake_job(ctx: JobContext, opts: ScanOptions) -> JobResult:
        seen.append(opts)
        return JobResult()

    monkeypatch.setattr(jobs, "_job", fake_job)
    ctx = JobContext(policies=svc.policies, state_dir=svc.state_dir, now=SINCE)
    jobs.scan_job(ctx)
    assert seen[0].exposure_since == {
        f"s3://{BUCKET}/{KEY}": datetime.fromtimestamp(first, UTC),
        f"s3://{BUCKET}": datetime.fromtimestamp(first, UTC),
        # a share file's exposure too (its reads come from Samba's audit log)
        "/srv/x.csv": datetime.fromtimestamp(first + 3600, UTC),
    }


def test_no_spool_yet_gives_no_start_and_creates_nothing(tmp_path: Path) -> None:
    assert exposure_starts(tmp_path) == {}
    assert not spool_path(tmp_path).exists()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    use_in_process_aws(monkeypatch, ISOLOIR_STATE_DIR=str(tmp_path / "state"))
    monkeypatch.delenv("ISOLOIR_NOW", raising=False)
    with mock_aws():
        yield


def test_reads_are_counted_from_each_resources_own_start(aws_env: None) -> None:
    policies = _policies()
    s3 = aws.client("s3", "eu-west-3")
    name = policies.elections[0].bucket_name
    logs = policies.baseline.log_bucket_names.get("eu-west-3") or policies.baseline.log_bucket_name
    for b in (name, logs):
        s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    s3.put_bucket_acl(Bucket=logs, ACL="log-delivery-write")
    s3.put_bucket_logging(
        Bucket=name,
        BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": logs, "TargetPrefix": f"s3/{name}/"}
        },
    )
    for k in ("a.csv", "b.csv"):
        s3.put_object(Bucket=name, Key=k, Body=b"x")
        s3.put_object_acl(Bucket=name, Key=k, ACL="public-read")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    lines = [
        _log(name, "a.csv", base + timedelta(minutes=30), OUTSIDER),  # before a's exposure
        _log(name, "a.csv", base + timedelta(minutes=90), OUTSIDER),
        _log(name, "a.csv", base + timedelta(minutes=100), "-"),
        _log(name, "b.csv", base + timedelta(minutes=95), "-"),  # b: a new exposure (now)
    ]
    s3.put_object(Bucket=logs, Key=f"s3/{name}/2027-03-01-11-15-00-ABCDEF", Body="\n".join(lines))
    start = base + timedelta(hours=1)
    inv = inventory_s3.fetch(
        policies, sample=False, only=[name], log_since={f"s3://{name}/a.csv": start}
    )
    evidence = next(b for b in inv.buckets if b.name == name).read_evidence
    assert evidence["a.csv"]["outside_reads"] == 2
    assert evidence["a.csv"]["reads_since"] == start.isoformat()
    assert evidence["b.csv"]["outside_reads"] == 0  # not yet open: counted from now
    assert datetime.fromisoformat(evidence["b.csv"]["reads_since"]) > base + timedelta(hours=2)
