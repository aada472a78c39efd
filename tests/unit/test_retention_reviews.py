"""What is kept after the campaigns is reviewed periodically (compliance review E7):
RET-REVIEW when a kept-contacts file or a permanent dataset is due for review, and
`isoloir retention reviewed` records the review (or refuses, changing nothing)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from isoloir.cli import main
from isoloir.jobs import JobContext
from isoloir.policy import load_policies
from isoloir.policy.model import Policies
from isoloir.retention import reviews
from isoloir.retention.jobs import retention_job

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"
# exempleville-2027: last round 2027-03-21; `benevoles` is its permanent dataset.
KEPT = "exempleville-2027--prospects--20270521T040000123456Z.csv"
CONTACT = "basile.modele@exemple.example"


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    policies = tmp_path / "policies"
    shutil.copytree(EXAMPLE, policies, symlinks=True)
    store = tmp_path / "contacts"
    store.mkdir()
    baseline = policies / "baseline.yml"
    text = baseline.read_text(encoding="utf-8")
    assert text.count("path: /srv/isoloir/contacts") == 1
    baseline.write_text(text.replace("/srv/isoloir/contacts", str(store)), encoding="utf-8")
    state = tmp_path / "state"
    state.mkdir()
    return policies, store, state


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T04:00:00+00:00").astimezone(UTC)


def review_findings(p: Policies, state: Path, day: str) -> dict[str, dict[str, object]]:
    return {f.resource: f.to_dict() for f in reviews.findings(p, state_dir=state, now=at(day))}


DATASET = "election/exempleville-2027/retention/review/benevoles"
FILE = f"retention/contacts/{KEPT}"


def test_permanent_dataset_is_due_a_period_after_the_last_round(
    setup: tuple[Path, Path, Path],
) -> None:
    policies, _, state = setup
    p = load_policies(policies)
    assert review_findings(p, state, "2028-03-20") == {}
    found = review_findings(p, state, "2028-03-21")
    assert list(found) == [DATASET]  # campaign datasets are destroyed, never reviewed
    f = found[DATASET]
    assert f["rule_id"] == "RET-REVIEW" and f["severity"] == "medium"
    assert f["election"] == "exempleville-2027"
    assert "benevoles" in str(f["message"]) and "2027-03-21" in str(f["message"])
    assert "retention reviewed --election exempleville-2027 --dataset benevoles" in str(
        f["remediation"]
    )


def test_kept_contacts_file_is_due_a_period_after_it_was_written(
    setup: tuple[Path, Path, Path],
) -> None:
    policies, store, state = setup
    (store / KEPT).write_text(f"prenom,nom,email\nBasile,Modèle,{CONTACT}\n", encoding="utf-8")
    (store / "notes.txt").write_text("not a kept-contacts file\n", encoding="utf-8")
    p = load_policies(policies)
    assert FILE not in review_findings(p, state, "2028-05-20")
    found = review_findings(p, state, "2028-05-21")
    assert FILE in found
    text = json.dumps(found[FILE], ensure_ascii=False)
    assert str(store / KEPT) in text and "2027-05-21" in text
    # counts, dates and paths only: never a contact
    assert CONTACT not in text and "Basile" not in text


def test_a_recorded_review_restarts_the_period(setup: tuple[Path, Path, Path]) -> None:
    policies, store, state = setup
    (store / KEPT).write_text("prenom,nom\n", encoding="utf-8")
    p = load_policies(policies)
    assert set(review_findings(p, state, "2028-06-01")) == {DATASET, FILE}
    reviews.record(state, now=at("2028-06-01"), by="dpo")
    assert set(review_findings(p, state, "2028-06-02")) == {DATASET}
    reviews.record(
        state, now=at("2028-06-02"), by="dpo", election="exempleville-2027", dataset="benevoles"
    )
    assert review_findings(p, state, "2029-05-31") == {}
    assert set(review_findings(p, state, "2029-06-02")) == {DATASET, FILE}


def test_the_period_comes_from_the_baseline(setup: tuple[Path, Path, Path]) -> None:
    policies, _, state = setup
    baseline = policies / "baseline.yml"
    text = baseline.read_text(encoding="utf-8")
    baseline.write_text(text.replace("permanent_review: P1Y", "permanent_review: P6M"), "utf-8")
    p = load_policies(policies)
    assert set(review_findings(p, state, "2027-09-21")) == {DATASET}
    assert review_findings(p, state, "2027-09-20") == {}


def test_the_daily_retention_job_raises_it(setup: tuple[Path, Path, Path]) -> None:
    policies, _, state = setup
    p = load_policies(policies)
    found = retention_job(JobContext(p, state, at("2028-04-01"), dry_run=True))
    assert [f.resource for f in found if f.rule_id == "RET-REVIEW"] == [DATASET]


def reviewed(
    policies: Path, state: Path, *args: str, monkeypatch: pytest.MonkeyPatch, day: str
) -> int:
    monkeypatch.setenv("ISOLOIR_NOW", f"{day}T09:00:00Z")
    return main(
        ["retention", "reviewed", "--config", str(policies), "--state-dir", str(state), *args]
    )


def test_reviewed_records_a_permanent_dataset(
    setup: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policies, _, state = setup
    code = reviewed(
        policies, state, "--dataset", "benevoles", monkeypatch=monkeypatch, day="2028-04-01"
    )
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "benevoles of exempleville-2027 on 2028-04-01" in out
    assert "next review due on 2029-04-01" in out
    record = json.loads(reviews.path(state).read_text(encoding="utf-8"))
    entry = record["datasets"]["exempleville-2027"]["benevoles"]
    assert entry["reviewed_at"].startswith("2028-04-01T09:00")
    assert oct(reviews.path(state).stat().st_mode & 0o777) == "0o600"
    assert review_findings(load_policies(policies), state, "2028-04-02") == {}


def test_reviewed_records_the_contacts_store(
    setup: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policies, store, state = setup
    (store / KEPT).write_text("prenom,nom\n", encoding="utf-8")
    assert reviewed(policies, state, "--contacts", monkeypatch=monkeypatch, day="2028-06-01") == 0
    assert "(1 kept-contacts file(s)) on 2028-06-01" in capsys.readouterr().out
    assert FILE not in review_findings(load_policies(policies), state, "2028-06-02")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--dataset", "nope"], "no permanent dataset 'nope' in the policies"),
        (
            ["--election", "exempleville-2027", "--dataset", "nope"],
            "no dataset 'nope' in election exempleville-2027",
        ),
        (["--election", "nope", "--dataset", "benevoles"], "no election 'nope' in the policies"),
        (
            ["--election", "exempleville-2027", "--dataset", "prospects"],
            "dataset prospects of exempleville-2027 is a campaign dataset",
        ),
        (["--dataset", "prospects"], "no permanent dataset 'prospects' in the policies"),
        ([], "give --contacts or --dataset NAME"),
        (["--contacts", "--dataset", "benevoles"], "give --contacts or --dataset NAME"),
        (["--contacts", "--election", "exempleville-2027"], "--election goes with --dataset"),
    ],
)
def test_reviewed_refuses_in_one_line_and_changes_nothing(
    setup: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    error: str,
) -> None:
    policies, _, state = setup
    reviews.record(state, now=at("2028-01-01"), by="dpo")
    before = reviews.path(state).read_bytes()
    assert reviewed(policies, state, *args, monkeypatch=monkeypatch, day="2028-04-01") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and error in captured.err, captured.err
    assert reviews.path(state).read_bytes() == before
    assert sorted(p.name for p in reviews.path(state).parent.iterdir()) == ["reviews.json"]


def test_reviewed_refuses_an_unreadable_record_and_leaves_it(
    setup: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policies, _, state = setup
    reviews.path(state).parent.mkdir(parents=True)
    reviews.path(state).write_bytes(b"{not json")
    assert reviewed(policies, state, "--contacts", monkeypatch=monkeypatch, day="2028-04-01") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a JSON document" in err
    assert reviews.path(state).read_bytes() == b"{not json"
    # the daily job then reminds of every review rather than none
    p = load_policies(policies)
    assert set(review_findings(p, state, "2028-04-01")) == {DATASET}


def test_the_finding_reads_in_french(setup: tuple[Path, Path, Path]) -> None:
    from isoloir import i18n

    policies, _, state = setup
    p = load_policies(policies)
    (f,) = reviews.findings(p, state_dir=state, now=at("2028-04-01"))
    assert f.message_id is not None and f.remediation_id is not None
    text = i18n.render("fr", f.message_id, f.params)
    assert text.startswith("Le jeu de données permanent benevoles de exempleville-2027 (")
    assert "réexamen était dû le 21/03/2028 (période de réexamen : P1Y)" in text
    assert "anciens adhérents" in i18n.render("fr", f.remediation_id, f.params)


def test_a_permanent_dataset_may_have_its_own_period(setup: tuple[Path, Path, Path]) -> None:
    policies, store, state = setup
    election = policies / "elections" / "exempleville-2027.yml"
    text = election.read_text(encoding="utf-8")
    assert text.count("# review: P6M") == 1
    election.write_text(text.replace("# review: P6M", "review: P6M"), encoding="utf-8")
    (store / KEPT).write_text("prenom,nom\n", encoding="utf-8")
    p = load_policies(policies)
    assert review_findings(p, state, "2027-09-20") == {}
    found = review_findings(p, state, "2027-09-21")
    assert list(found) == [DATASET]  # the store keeps the baseline's year
    assert "review period P6M" in str(found[DATASET]["message"])


def test_reviewed_gives_the_next_date_of_the_dataset_s_own_period(
    setup: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policies, _, state = setup
    election = policies / "elections" / "exempleville-2027.yml"
    text = election.read_text(encoding="utf-8")
    election.write_text(text.replace("# review: P6M", "review: P6M"), encoding="utf-8")
    args = ("--dataset", "benevoles")
    assert reviewed(policies, state, *args, monkeypatch=monkeypatch, day="2028-04-01") == 0
    assert "next review due on 2028-10-01" in capsys.readouterr().out
