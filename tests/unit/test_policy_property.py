"""Property: whatever a user writes, the validator answers valid or a clean
error, never a traceback."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isoloir.policy import load_policies
from isoloir.policy.loader import PolicyError, from_normalised, normalise

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"
ELECTION = "elections/exempleville-2027.yml"

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.text(alphabet="0123456789-", max_size=12),
    st.sampled_from(["P6M", "6 mois", "2027-02-30", "9999-12-31", "eu-west-2", "", "P99999Y"]),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            found += paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found += paths(v, (*prefix, i))
    return found


def mutate(data: Any, choice: int, op: int, value: Any) -> Any:
    data = copy.deepcopy(data)
    targets = paths(data)[1:]
    path = targets[choice % len(targets)]
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    if op == 0 and isinstance(parent, dict):
        del parent[key]
    elif op == 1 and isinstance(parent, dict):
        parent[f"{key}_extra"] = value
    else:
        parent[key] = value
    return data


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["baseline.yml", ELECTION]),
    choice=st.integers(0, 10**6),
    op=st.integers(0, 3),
    value=values,
)
def test_validator_never_raises_a_traceback(
    tmp_path_factory: Any,
    which: str,
    choice: int,
    op: int,
    value: Any,
) -> None:
    root = tmp_path_factory.mktemp("p") / "policies"
    shutil.copytree(EXAMPLE, root, symlinks=True)
    data = yaml.safe_load((root / which).read_text())
    mutated = mutate(data, choice, op, value)
    (root / which).write_text(yaml.safe_dump(mutated, allow_unicode=True))
    try:
        load_policies(root)
    except PolicyError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert str(problem).startswith(f"{root / which}:") or str(root) in str(problem)


@settings(max_examples=150, deadline=None)
@given(choice=st.integers(0, 10**6), op=st.integers(0, 3), value=values)
def test_rendered_loader_never_raises_a_traceback(choice: int, op: int, value: Any) -> None:
    data = normalise(load_policies(EXAMPLE))
    try:
        from_normalised(mutate(data, choice, op, value))
    except PolicyError as exc:
        assert exc.problems


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_files(tmp_path_factory: Any, text: str) -> None:
    root = tmp_path_factory.mktemp("t") / "policies"
    shutil.copytree(EXAMPLE, root, symlinks=True)
    (root / ELECTION).write_text(text)
    try:
        load_policies(root)
    except PolicyError as exc:
        assert exc.problems
