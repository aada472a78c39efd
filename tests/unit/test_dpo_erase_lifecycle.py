"""A person's erasure before the retention date on AWS (isoloir.dpo.erase._bucket).

The bucket policy then denies the agents' role s3:DeleteObjectVersion, so
DeleteObjects answers AccessDenied per version. moto in-process does not evaluate
bucket policy conditions: a wrapper of the client gives that answer. The old
versions are left to the bucket's lifecycle rule when one surely expires them;
otherwise the erasure stops. Fake people only; failures print counts and paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from tests.moto_env import use_in_process_aws
from tests.unit.test_retention_purge_safety import REGION, World, _csv

from isoloir import aws
from isoloir.cli import main
from isoloir.dpo import erase as erase_mod
from isoloir.dpo import requests
from isoloir.dpo.match import Query
from isoloir.retention import keys

KEY = "prospects/liste.csv"
NOW = datetime(2027, 4, 2, 10, 30, tzinfo=UTC)
EMAIL = "alix@exemple.example"
ALIX = ["Alix", "Fictif", EMAIL, "06 39 98 00 01", "Exempleville", "oui", ""]
BASILE = ["Basile", "Test", "basile@exemple.example", "06 39 98 00 02", "Exempleville", "oui", ""]
OLD = _csv([ALIX, BASILE])  # the first version
CURRENT = _csv([BASILE, ALIX])  # the second, current when the erasure starts
DUE = date(2027, 6, 21)  # the election's retention date, after NOW
BUCKET = "mouvement-exemple-test-ville-2026"  # World's


class Refusing:
    """The S3 client, except that DeleteObjects refuses every version (`code`)."""

    def __init__(self, s3: Any, code: str = "AccessDenied") -> None:
        self._s3 = s3
        self.code = code
        self.lifecycle_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def delete_objects(self, **kw: Any) -> dict[str, Any]:
        objects = kw["Delete"]["Objects"]
        errors = [
            {"Key": o["Key"], "VersionId": o["VersionId"], "Code": self.code, "Message": "refused"}
            for o in objects
            if "VersionId" in o
        ]
        return {"Errors": errors}

    def get_bucket_lifecycle_configuration(self, **kw: Any) -> Any:
        self.lifecycle_reads += 1
        return self._s3.get_bucket_lifecycle_configuration(**kw)


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_in_process_aws(monkeypatch)
    monkeypatch.delenv("ISOLOIR_NOW", raising=False)
    with mock_aws():
        yield aws.client("s3", REGION)


def _world(root: Path, s3: Any) -> World:
    """The purge tests' world (election ville-2026), its bucket with two versions."""
    w = World(root, DUE)
    s3.create_bucket(Bucket=w.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=w.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=w.bucket, Key=KEY, Body=OLD)
    s3.put_object(Bucket=w.bucket, Key=KEY, Body=CURRENT)
    return w


def _rule(rule_id: str, days: int, selector: dict[str, Any], status: str = "Enabled") -> Any:
    return {
        "ID": rule_id,
        "Status": status,
        "Filter": selector,
        "NoncurrentVersionExpiration": {"NoncurrentDays": days},
    }


def _lifecycle(s3: Any, *rules: dict[str, Any]) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=BUCKET, LifecycleConfiguration={"Rules": list(rules)}
    )


def _erase(w: World, client: Any) -> erase_mod.Erasure:
    return erase_mod.erase(
        Query.build(emails=[EMAIL]),
        w.policies(),
        request_id="DR-20270401-abcdef",
        state_dir=w.state,
        secrets_dir=w.secrets,
        now=lambda: NOW,
        s3_for=lambda region: client,
    )


def _versions(s3: Any) -> int:
    return len(s3.list_object_versions(Bucket=BUCKET).get("Versions", []))


LEFT_7 = "version left to S3 lifecycle rule noncurrent-versions: deleted 7 days after it stopped being current"  # noqa: E501


def test_refused_versions_are_left_to_the_whole_bucket_rule(tmp_path: Path, s3: Any) -> None:
    w = _world(tmp_path, s3)
    _lifecycle(s3, _rule("noncurrent-versions", 7, {}))
    client = Refusing(s3)
    done = _erase(w, client)
    assert client.lifecycle_reads == 1  # once per bucket
    body = done.record["certificate"]
    left = [a for a in body["actions"] if "expires_by" in a]
    assert len(left) == 2  # the old version and the one the rewrite made non-current
    # 2027-04-02 10:30 + 7 days -> 2027-04-09; next midnight 2027-04-10; + 1 day margin
    assert {(a["action"], a["expires_by"], a["rows_removed"]) for a in left} == {
        (LEFT_7, "2027-04-11", 0)
    }
    assert all(a["location"] == f"s3://{BUCKET}/{KEY}" for a in left)
    assert body["totals"]["versions_left_to_lifecycle"] == 2
    assert body["totals"]["versions_deleted"] == 0
    assert body["totals"]["expires_by"] == "2027-04-11"
    assert body["verification"]["rows_pending_lifecycle"] == 2
    assert body["verification"]["rows_left"] == 2
    assert done.rows_pending_lifecycle == 2 and done.expires_by == "2027-04-11"
    assert done.complete
    assert _versions(s3) == 3  # nothing deleted: the rewrite added the clean current one
    assert done.path is not None
    public = keys.signing_key(w.secrets).public_key()
    assert erase_mod.verify_record(done.path.read_bytes(), public) == []
    text = done.path.read_text(encoding="utf-8")
    assert EMAIL not in text and "Alix" not in text


def test_a_campaign_prefix_rule_covers_its_keys_with_its_days(tmp_path: Path, s3: Any) -> None:
    w = _world(tmp_path, s3)
    _lifecycle(
        s3,
        _rule("retention:reunions/", 1, {"Prefix": "reunions/"}),  # another prefix
        _rule("retention:prospects/", 3, {"And": {"Prefix": "prospects/"}}),
        _rule("noncurrent-versions", 30, {}, status="Enabled"),
    )
    done = _erase(w, Refusing(s3))
    left = [a for a in done.record["certificate"]["actions"] if "expires_by" in a]
    assert {a["action"] for a in left} == {
        "version left to S3 lifecycle rule retention:prospects/: deleted 3 days after it "
        "stopped being current"
    }
    assert {a["expires_by"] for a in left} == {"2027-04-07"}
    assert done.complete


def test_a_legal_hold_disables_the_rule_and_the_erasure_stops(tmp_path: Path, s3: Any) -> None:
    w = _world(tmp_path, s3)
    _lifecycle(s3, _rule("noncurrent-versions", 7, {}, status="Disabled"))
    with pytest.raises(erase_mod.EraseError) as caught:
        _erase(w, Refusing(s3))
    message = str(caught.value)
    assert message.startswith(
        f"s3://{BUCKET}/{KEY}: 2 version(s) kept: AWS refused their deletion (AccessDenied) "
        "and no enabled lifecycle rule expires this key's old versions (legal hold, or the "
        "bucket is not as deployed); an administrator must delete them"
    )
    assert "the current version was already rewritten without the person" in message
    assert EMAIL not in message
    assert not list(erase_mod.records_dir(w.state).glob("*.json"))


def test_no_lifecycle_configuration_stops_the_erasure(tmp_path: Path, s3: Any) -> None:
    w = _world(tmp_path, s3)
    with pytest.raises(erase_mod.EraseError, match="no enabled lifecycle rule"):
        _erase(w, Refusing(s3))


def test_a_tag_filter_might_not_select_the_object(tmp_path: Path, s3: Any) -> None:
    w = _world(tmp_path, s3)
    _lifecycle(
        s3,
        _rule("tagged", 1, {"Tag": {"Key": "classe", "Value": "prospects"}}),
        _rule(
            "tagged-prefix",
            1,
            {"And": {"Prefix": "prospects/", "Tags": [{"Key": "classe", "Value": "x"}]}},
        ),
    )  # an object size filter: test_the_rule_reading (moto drops it from the answer)
    with pytest.raises(erase_mod.EraseError, match="no enabled lifecycle rule"):
        _erase(w, Refusing(s3))


def test_another_error_code_stops_the_erasure_as_before(tmp_path: Path, s3: Any) -> None:
    w = _world(tmp_path, s3)
    _lifecycle(s3, _rule("noncurrent-versions", 7, {}))
    client = Refusing(s3, code="InternalError")
    with pytest.raises(erase_mod.EraseError, match=r"2 version\(s\) not deleted \(InternalError\)"):
        _erase(w, client)
    assert client.lifecycle_reads == 0


def test_the_rule_reading() -> None:
    rule = _rule("r", 5, {})
    assert erase_mod.covering_rule([rule], "a/b.csv") == ("r", 5)
    legacy = {"ID": "old", "Status": "Enabled", "Prefix": "a/"}
    legacy["NoncurrentVersionExpiration"] = {"NoncurrentDays": 2}
    assert erase_mod.covering_rule([rule, legacy], "a/b.csv") == ("old", 2)
    assert erase_mod.covering_rule([legacy], "b/c.csv") is None
    # the deployed bucket: a campaign prefix's rule and the whole bucket's, same days
    same = [_rule("retention:a/", 5, {"Prefix": "a/"}), rule]
    assert erase_mod.covering_rule(same, "a/b.csv") == ("r", 5)
    kept_newer = _rule("n", 1, {})
    kept_newer["NoncurrentVersionExpiration"]["NewerNoncurrentVersions"] = 3
    assert erase_mod.covering_rule([kept_newer], "a/b.csv") is None
    for selector in (
        {"ObjectSizeGreaterThan": 10},
        {"And": {"Prefix": "a/", "ObjectSizeLessThan": 1 << 20}},
        {"Tag": {"Key": "classe", "Value": "x"}},
        {"Prefix": "a/", "Tag": {"Key": "classe", "Value": "x"}},
    ):
        assert erase_mod.covering_rule([_rule("s", 1, selector)], "a/b.csv") is None, selector
    assert erase_mod.covering_rule([_rule("p", 1, {"And": {"Prefix": "a/"}})], "a/b") == ("p", 1)
    current_only = {"ID": "c", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}
    assert erase_mod.covering_rule([current_only], "a/b.csv") is None
    # the next midnight after the time + days, then a day's margin (UTC)
    assert erase_mod.expires_by(datetime(2027, 12, 30, 23, 59, tzinfo=UTC), 1) == date(2028, 1, 2)
    assert erase_mod.expires_by(datetime(2027, 4, 2, 0, 0, tzinfo=UTC), 7) == date(2027, 4, 11)


def test_the_cli_exits_0_and_says_when_they_are_gone(
    tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    w = _world(tmp_path, s3)
    _lifecycle(s3, _rule("noncurrent-versions", 7, {}))
    client = Refusing(s3)
    monkeypatch.setattr(erase_mod.aws, "client", lambda service, region: client)
    monkeypatch.setattr("isoloir.dpo.cli._policies", lambda args: w.policies())
    monkeypatch.setenv("ISOLOIR_SECRETS_DIR", str(w.secrets))
    monkeypatch.setenv("ISOLOIR_NOW", NOW.isoformat())
    log = requests.RequestLog(w.state)
    request = log.open("erasure", date(2027, 4, 1), NOW)
    argv = ["person", "erase", "--email", EMAIL, "--request", request.id]
    assert main([*argv, "--state-dir", str(w.state)]) == 0
    out = capsys.readouterr()
    line = (
        "2 old version(s) are left to S3's lifecycle rule(s): gone by 2027-04-11; "
        'run "isoloir person find" after that date to confirm'
    )
    assert line in out.out.splitlines()
    assert EMAIL not in out.out + out.err
    r = requests.RequestLog(w.state).get(request.id)
    assert r.status == "closed"
    assert r.actions[-1]["rows_pending_lifecycle"] == 2
    assert r.actions[-1]["expires_by"] == "2027-04-11"
    record = json.loads(Path(r.actions[-1]["erasure_record"]).read_text(encoding="utf-8"))
    assert record["certificate"]["totals"]["versions_left_to_lifecycle"] == 2


def test_an_unreadable_lifecycle_stops_the_erasure(tmp_path: Path, s3: Any) -> None:
    from botocore.exceptions import ClientError

    w = _world(tmp_path, s3)
    _lifecycle(s3, _rule("noncurrent-versions", 7, {}))

    class Blind(Refusing):
        def get_bucket_lifecycle_configuration(self, **kw: Any) -> Any:
            error = {"Error": {"Code": "AccessDenied", "Message": "refused"}}
            raise ClientError(error, "GetBucketLifecycleConfiguration")  # type: ignore[arg-type]

    with pytest.raises(erase_mod.EraseError, match="could not be read: AccessDenied"):
        _erase(w, Blind(s3))
