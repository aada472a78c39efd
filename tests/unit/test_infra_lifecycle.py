"""Lifecycle: the rendered rules cover campaign datasets only, the exposure check
expects that shape, and the tests' lifecycle executor follows S3's semantics
(checked against moto in-process)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from tests.plugins.lifecycle import Executor, run_lifecycle

from isoloir.exposure import registry
from isoloir.exposure.model import Bucket, Inventory, S3Inventory
from isoloir.policy import load_policies
from isoloir.policy.loader import PolicyError
from isoloir.policy.model import Policies
from isoloir.policy.render import campaign_prefixes, terraform_vars

ROOT = Path(__file__).resolve().parents[2]
EL = "exempleville-2027"
BUCKET = "mouvement-exemple-exempleville-2027"


@pytest.fixture(scope="module")
def policies() -> Policies:
    return load_policies(ROOT / "policies")


# ---------------------------------------------------------------- render


def test_rendered_rules_never_cover_a_permanent_dataset(policies: Policies) -> None:
    for e in policies.elections:
        rendered = terraform_vars(policies)["elections"][e.id]["campaign_prefixes"]
        permanent = [d.bucket_prefix for d in e.datasets if not d.campaign_specific]
        assert rendered, e.id
        assert all(c and not k.startswith(c) for c in rendered for k in permanent)
    example = terraform_vars(policies)["elections"][EL]
    assert example["campaign_prefixes"] == ["porte-a-porte/", "prospects/"]
    assert "benevoles/" in example["dataset_prefixes"]


def test_a_campaign_prefix_covering_a_permanent_one_is_refused(policies: Policies) -> None:
    e = policies.election(EL)
    kept = dataclasses.replace(e.dataset("benevoles"), bucket_prefix="prospects/benevoles/")
    nested = dataclasses.replace(
        e, datasets=tuple(kept if d.name == "benevoles" else d for d in e.datasets)
    )
    with pytest.raises(PolicyError, match="covers the permanent dataset prefix"):
        campaign_prefixes(nested)


# ---------------------------------------------------------------- exposure check


def _rule(prefix: str | None, expiry: datetime, *, status: str = "Enabled") -> dict[str, Any]:
    return {
        "ID": f"retention:{prefix}",
        "Status": status,
        "Filter": {} if prefix is None else {"Prefix": prefix},
        "Expiration": {"Date": expiry},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
    }


def _hits(policies: Policies, rules: list[dict[str, Any]], legal_hold: bool = False) -> list[Any]:
    if legal_hold:
        e = dataclasses.replace(policies.election(EL), legal_hold=True)
        policies = dataclasses.replace(policies, elections=(e,))
    bucket = Bucket(name=BUCKET, region="eu-west-3", versioning="Enabled", lifecycle=tuple(rules))
    s3 = S3Inventory(account_id="123456789012", account_public_access_block={})
    s3.buckets = [bucket]
    inv = Inventory(policies=policies, now=datetime(2027, 3, 1, tzinfo=UTC), s3=s3)
    return list(registry.discover()["s3_bucket_lifecycle_retention"].evaluate(inv))


BACKSTOP = datetime(2027, 6, 4, tzinfo=UTC)  # retention due 2027-05-21 + 14 days


NONCURRENT = {
    "ID": "noncurrent-versions",
    "Status": "Enabled",
    "Filter": {},
    "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
}


def test_check_accepts_the_rendered_shape(policies: Policies) -> None:
    rules = [_rule("porte-a-porte/", BACKSTOP), _rule("prospects/", BACKSTOP)]
    assert _hits(policies, rules) == []
    # old versions of the whole bucket, permanent datasets included: no current one
    assert _hits(policies, [*rules, NONCURRENT]) == []


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        # the old shape: the whole bucket, permanent datasets included
        ([_rule(None, datetime(2027, 5, 21, tzinfo=UTC))], "the whole bucket"),
        (
            [
                _rule("porte-a-porte/", BACKSTOP),
                _rule("prospects/", BACKSTOP),
                _rule("benevoles/", BACKSTOP),
            ],
            "permanent dataset prefix benevoles/",
        ),
        # dated on the due day: S3 would delete before the agent extracts
        (
            [
                _rule("porte-a-porte/", datetime(2027, 5, 21, tzinfo=UTC)),
                _rule("prospects/", BACKSTOP),
            ],
            "porte-a-porte/",
        ),
        ([_rule("prospects/", BACKSTOP)], "porte-a-porte/"),  # a campaign prefix left out
    ],
)
def test_check_flags_wrong_shapes(
    policies: Policies, rules: list[dict[str, Any]], words: str
) -> None:
    found = _hits(policies, rules)
    assert found and any(words in h.text() for h in found), [h.text() for h in found]


def test_check_under_legal_hold_expects_no_expiry(policies: Policies) -> None:
    disabled = [_rule(p, BACKSTOP, status="Disabled") for p in ("porte-a-porte/", "prospects/")]
    assert _hits(policies, disabled, legal_hold=True) == []
    assert _hits(policies, [_rule(None, BACKSTOP)], legal_hold=True)
    # under a legal hold old versions are kept too
    assert _hits(policies, [*disabled, {**NONCURRENT, "Status": "Disabled"}], legal_hold=True) == []
    found = _hits(policies, [*disabled, NONCURRENT], legal_hold=True)
    assert [h.params["rule"] for h in found] == ["noncurrent-versions"]


# ---------------------------------------------------------------- executor (moto in-process)

T0 = datetime.now(UTC)  # set again by the `s3` fixture, when each test starts
BKT = "isoloir-lifecycle-test"


@pytest.fixture
def s3() -> Iterator[Any]:
    # The tests date their lifecycle runs from T0 and their objects are dated when
    # they are put: T0 is taken as the test starts, not at import (a run crossing
    # midnight UTC between collection and the test moved S3's rounding by a day).
    global T0
    T0 = datetime.now(UTC)
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-3")
        client.create_bucket(
            Bucket=BKT, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
        )
        yield client


def _versioned(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket=BKT, VersioningConfiguration={"Status": "Enabled"})


def _lifecycle(s3: Any, *rules: dict[str, Any]) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=BKT, LifecycleConfiguration={"Rules": list(rules)})


def _state(s3: Any) -> dict[str, list[str]]:
    """key -> kinds of its versions, newest first ("v" data, "m" delete marker)."""
    got = s3.list_object_versions(Bucket=BKT)
    entries = [(v["Key"], v["LastModified"], "v") for v in got.get("Versions", [])]
    entries += [(m["Key"], m["LastModified"], "m") for m in got.get("DeleteMarkers", [])]
    out: dict[str, list[str]] = {}
    for key, _, kind in entries:
        out.setdefault(key, []).append(kind)
    return {k: sorted(v, reverse=True) for k, v in out.items()}


def test_date_expiry_on_a_versioned_bucket_adds_markers_on_the_prefix_only(s3: Any) -> None:
    _versioned(s3)
    date = T0 + timedelta(days=30)
    _lifecycle(s3, _rule("prospects/", date))
    s3.put_object(Bucket=BKT, Key="prospects/a.csv", Body=b"x")
    s3.put_object(Bucket=BKT, Key="benevoles/b.csv", Body=b"y")

    before = run_lifecycle(s3, BKT, date - timedelta(days=1))
    assert before.delete_markers_added == [] and before.versions_deleted == []
    ex = Executor(s3, BKT)
    assert ex.run(date).delete_markers_added == ["prospects/a.csv"]
    assert _state(s3) == {"prospects/a.csv": ["v", "m"], "benevoles/b.csv": ["v"]}
    # the data version became non-current at `date`: kept for NoncurrentDays (7)
    assert ex.run(date + timedelta(days=6)).versions_deleted == []
    later = ex.run(date + timedelta(days=8))
    assert [k for k, _ in later.versions_deleted] == ["prospects/a.csv"]
    assert _state(s3) == {"prospects/a.csv": ["m"], "benevoles/b.csv": ["v"]}
    assert s3.get_object(Bucket=BKT, Key="benevoles/b.csv")["Body"].read() == b"y"


def test_expired_object_delete_marker_and_whole_bucket_filter(s3: Any) -> None:
    _versioned(s3)
    s3.put_object(Bucket=BKT, Key="k/a", Body=b"x")
    s3.put_object(Bucket=BKT, Key="k/a", Body=b"x2")
    s3.delete_object(Bucket=BKT, Key="k/a")
    _lifecycle(
        s3,
        {
            "ID": "nc",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        },
        {
            "ID": "hk",
            "Status": "Enabled",
            "Filter": {},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
    )
    first = run_lifecycle(s3, BKT, T0 + timedelta(days=3))
    assert len(first.versions_deleted) == 2 and first.markers_removed == []
    second = run_lifecycle(s3, BKT, T0 + timedelta(days=4))
    assert len(second.markers_removed) == 1
    assert _state(s3) == {}


def test_days_expiry_disabled_rules_and_unversioned_bucket(s3: Any) -> None:
    s3.put_object(Bucket=BKT, Key="old/a", Body=b"x")
    s3.put_object(Bucket=BKT, Key="new/b", Body=b"y")
    _lifecycle(
        s3,
        {
            "ID": "d",
            "Status": "Enabled",
            "Filter": {"And": {"Prefix": "old/", "ObjectSizeGreaterThan": 0}},
            "Expiration": {"Days": 10},
        },
        {"ID": "off", "Status": "Disabled", "Filter": {}, "Expiration": {"Days": 1}},
    )
    # created today: 10 days later, rounded up to the next midnight UTC
    assert (
        run_lifecycle(s3, BKT, T0 + timedelta(days=10) - timedelta(hours=1)).objects_deleted == []
    )
    done = run_lifecycle(s3, BKT, T0 + timedelta(days=11))
    assert done.objects_deleted == ["old/a"] and done.delete_markers_added == []
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BKT)["Contents"]] == ["new/b"]


def test_tag_filter(s3: Any) -> None:
    _versioned(s3)
    s3.put_object(Bucket=BKT, Key="t/a", Body=b"x", Tagging="campaign=yes")
    s3.put_object(Bucket=BKT, Key="t/b", Body=b"x")
    _lifecycle(
        s3,
        {
            "ID": "t",
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": "campaign", "Value": "yes"}},
            "Expiration": {"Date": T0},
        },
    )
    assert run_lifecycle(s3, BKT, T0 + timedelta(days=1)).delete_markers_added == ["t/a"]
