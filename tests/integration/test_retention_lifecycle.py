"""S3's lifecycle runs on the retention date before the agent (issue: aws readiness, F5).

The emulator never runs lifecycle rules; `tests.plugins.lifecycle` applies them
with S3's documented semantics at a chosen instant. Here it runs at midnight
UTC of the due date, before the agent's purge (which runs later that day):

1. with the rules the infra renders (one per campaign prefix, dated a backstop
   after the due date) nothing is expired yet, and the permanent dataset is
   never covered, not even weeks later;
2. even when an expiry did reach a campaign dataset first (delete markers on
   every current version, as the old whole-bucket rule did at 00:00 UTC), the
   agent still keeps exactly the consenting rows and records every opt-out,
   because it extracts from the newest version that is not a delete marker.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from tests.integration.test_retention import (
    CONTACT_COLUMNS,
    World,
    bucket_state,
    clients,  # noqa: F401  (fixture)
    fake_people,
    make_bucket,
    only,
    prospect_csv,
    put_many,
    world,  # noqa: F401  (fixture)
)
from tests.plugins.lifecycle import run_lifecycle

from isoloir.policy import load_policies
from isoloir.policy.render import campaign_prefixes
from isoloir.retention import tabular
from isoloir.retention.suppression import SuppressionList
from isoloir.retention.suppression import db_path as suppression_db

pytestmark = pytest.mark.integration

DUE = date(2026, 5, 22)  # election_yaml's default retention date
BACKSTOP_DAYS = 14  # infra/variables.tf lifecycle_backstop_days default
NONCURRENT_DAYS = 7


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def rendered_rules(prefixes: list[str], expire_on: date) -> list[dict[str, Any]]:
    """The election bucket's expiry rules as infra/modules/election_storage writes them."""
    rules: list[dict[str, Any]] = [
        {
            "ID": f"retention:{p}",
            "Status": "Enabled",
            "Filter": {"Prefix": p},
            "Expiration": {"Date": midnight(expire_on)},
            "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_DAYS},
        }
        for p in prefixes
    ]
    rules.append(
        {
            "ID": "expired-delete-markers",
            "Status": "Enabled",
            "Filter": {},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        }
    )
    return rules


def test_lifecycle_before_the_agent_loses_nothing(world: World, clients: Any) -> None:  # noqa: F811
    s3, kms = clients
    bucket = world.add_election(
        "ville-2026",
        [{"name": "prospects", "tabular": True}, {"name": "benevoles", "category": "permanent"}],
    )
    make_bucket(s3, kms, bucket)
    (world.share_root / "ville-2026" / "prospects").mkdir(parents=True)
    (world.share_root / "ville-2026" / "benevoles").mkdir(parents=True)

    people = fake_people(24, seed=5)
    for i, p in enumerate(people):
        p["consentement"] = "oui" if i % 3 == 0 else "non"
        p["desinscrit"] = "oui" if i % 4 == 1 else ""
    put_many(s3, bucket, [("prospects/liste.csv", prospect_csv(people[:12]))])
    put_many(s3, bucket, [("prospects/terrain.csv", prospect_csv(people[12:], ";"))])
    put_many(
        s3, bucket, [(f"benevoles/b{i}.csv", prospect_csv(people[i : i + 2])) for i in range(3)]
    )
    benevoles = bucket_state(s3, bucket, "benevoles/")

    election = next(e for e in load_policies(world.policies).elections if e.id == "ville-2026")
    prefixes = campaign_prefixes(election)
    assert prefixes == ["prospects/"]  # never the permanent dataset

    # 1. The rendered rules, at 00:00 UTC on the due date and long after it.
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": rendered_rules(prefixes, DUE + timedelta(BACKSTOP_DAYS))},
    )
    report = run_lifecycle(s3, bucket, midnight(DUE))
    assert report.delete_markers_added == [] and report.versions_deleted == []
    for later in (BACKSTOP_DAYS, BACKSTOP_DAYS + NONCURRENT_DAYS + 1, 90):
        run_lifecycle(s3, bucket, midnight(DUE + timedelta(later)))
        assert bucket_state(s3, bucket, "benevoles/") == benevoles

    # 2. Put the campaign data back and let an expiry beat the agent to it.
    put_many(s3, bucket, [("prospects/liste.csv", prospect_csv(people[:12]))])
    put_many(s3, bucket, [("prospects/terrain.csv", prospect_csv(people[12:], ";"))])
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": rendered_rules(prefixes, DUE)}
    )
    early = run_lifecycle(s3, bucket, midnight(DUE))
    assert sorted(early.delete_markers_added) == ["prospects/liste.csv", "prospects/terrain.csv"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="prospects/").get("KeyCount", 0) == 0

    result = world.cli("retention", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "@" not in result.stdout + result.stderr

    consenting = [p for p in people if p["consentement"] == "oui" and not p["desinscrit"]]
    opted = [p for p in people if p["desinscrit"] == "oui"]
    assert consenting and opted
    header, kept = tabular.read_table(
        only(world.contacts, "ville-2026--prospects--*.csv").read_bytes()
    )
    assert header == CONTACT_COLUMNS
    assert sorted(tuple(r[c] for c in CONTACT_COLUMNS) for r in kept) == sorted(
        tuple(p[c] for c in CONTACT_COLUMNS) for p in consenting
    )
    secret = bytes.fromhex((world.secrets / "retention-hmac.key").read_text().strip())
    with SuppressionList(suppression_db(world.state), secret) as store:
        assert store.count() == 2 * len(opted)
        for p in opted:
            assert store.contains(tabular.normalise_email(p["email"]), None)
            assert store.contains(None, tabular.normalise_phone(p["telephone"]))

    # the purge removed every campaign version; the permanent dataset is untouched
    assert bucket_state(s3, bucket, "prospects/") == []
    assert bucket_state(s3, bucket, "benevoles/") == benevoles
