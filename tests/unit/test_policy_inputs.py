"""Hostile policy and input files (issue 13 item 16, security review F2/L6,
CLI review D1, D2, D3, D9, D19, D30): every error is one line naming the file
and the reason, exit 2, in bounded time, and nothing half-written."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from isoloir.cli import main
from isoloir.policy import PolicyError, load_policies, load_rendered
from isoloir.policy import loader as policy_loader
from isoloir.policy.inputs import header_key
from isoloir.policy.yamlsrc import parse
from isoloir.retention import tabular

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"
ELECTION = "elections/exempleville-2027.yml"
SCHEMAS = Path(policy_loader.__file__).parent / "schema"
MEMORY_LIMIT = 2 << 30


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "policies"
    shutil.copytree(EXAMPLE, target, symlinks=True)
    return target


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def child(code: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run in a child with bounded time and memory: a hang or a read of
    /dev/zero is a failure, not a stuck or swapping test run."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=_bounded,
    )


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    code = "import sys; from isoloir.cli import main; sys.exit(main(sys.argv[1:]))"
    return child(code, *args, timeout=timeout)


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [
        line for line in result.stderr.splitlines() if not line.endswith("nothing was changed.")
    ]
    assert len(lines) == 1, lines
    return lines[0]


# --------------------------------------------------- schema anchors (L6)


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [p for v in node.values() for p in _patterns(v)]
    if isinstance(node, list):
        return [p for v in node for p in _patterns(v)]
    return []


def test_every_schema_pattern_is_anchored_at_the_very_end() -> None:
    patterns = [
        p
        for name in ("baseline", "election")
        for p in _patterns(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))
    ]
    assert len(patterns) >= 19
    loose = [p for p in patterns if not (p.endswith("(?!\\n)$") or p.endswith("\\Z"))]
    assert not loose


def _value_at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


@pytest.mark.parametrize(
    ("name", "rel", "path"),
    [
        ("baseline", "baseline.yml", ("people", 0, "id")),
        ("baseline", "baseline.yml", ("people", 0, "email")),
        ("baseline", "baseline.yml", ("organisation", "slug")),
        ("baseline", "baseline.yml", ("alerts", "webhooks", 0, "url")),
        ("baseline", "baseline.yml", ("alerts", "routes", 0, "channels", 0)),
        ("baseline", "baseline.yml", ("hosts", "share_root")),
        ("baseline", "baseline.yml", ("schedules", "identity_time")),
        ("election", ELECTION, ("id",)),
        ("election", ELECTION, ("retention", "after")),
        ("election", ELECTION, ("datasets", 0, "bucket_prefix")),
        ("election", ELECTION, ("datasets", 0, "share_path")),
        ("election", ELECTION, ("datasets", 0, "name")),
    ],
)
def test_schema_refuses_a_trailing_newline(name: str, rel: str, path: tuple[Any, ...]) -> None:
    data = parse((EXAMPLE / rel).read_text(encoding="utf-8")).data
    validator = policy_loader._validator(name)
    assert not list(validator.iter_errors(data))
    parent = _value_at(data, path[:-1])
    parent[path[-1]] = f"{parent[path[-1]]}\n"
    errors = [e for e in validator.iter_errors(data) if tuple(e.absolute_path) == path]
    assert [e.validator for e in errors] == ["pattern"]


# ------------------------------------------------ control characters (F2)


def test_a_key_with_a_control_character_is_refused_on_one_line(policies: Path) -> None:
    path = policies / "baseline.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("max_age_days: 0", '"max_age_days\\n[x]": 0'), encoding="utf-8")
    error = one_error(cli("policy", "validate", str(policies)))
    assert error.startswith(f"{path}:")
    assert "passwords.max_age_days\\n[x]: contains a control character (newline)" in error


def test_rendered_config_with_a_control_character_is_refused(tmp_path: Path) -> None:
    assert main(["policy", "render", "--policies", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    config = tmp_path / "agent/agent.json"
    data = json.loads(config.read_text())
    data["elections"][0]["policy"]["label"] = "Muni\n[tout]\npath = /"
    config.write_text(json.dumps(data))
    with pytest.raises(PolicyError) as caught:
        load_rendered(config)
    (problem,) = caught.value.problems
    assert str(problem).endswith(f"{ELECTION}: label: contains a control character (newline)")


def test_share_outside_share_root_in_rendered_config_is_refused(tmp_path: Path) -> None:
    assert main(["policy", "render", "--policies", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    config = tmp_path / "agent/agent.json"
    data = json.loads(config.read_text())
    data["elections"][0]["policy"]["share"] = "/etc"
    config.write_text(json.dumps(data))
    with pytest.raises(PolicyError, match="share: .* one folder directly under"):
        load_rendered(config)


# ------------------------------------------- consent / opt_out (D3)


@pytest.mark.parametrize(
    "name", ["Désinscrit", " DESINSCRIT ", "dés-inscrit", "E-mail", "Téléphone", "Prénom"]
)
def test_header_key_matches_the_retention_agent(name: str) -> None:
    assert tabular.header_key is header_key  # one normaliser: the loader's is the agent's
    assert header_key(name) == tabular.header_key(name)
    assert header_key(name) in {"desinscrit", "email", "telephone", "prenom"}


# ------------------------------------ file types and sizes (D2, D9, D30)


def _special(kind: str, path: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "dangling":
        path.symlink_to(path.parent / "absent.yml")


EXPECTED = {
    "fifo": "not a regular file (a named pipe)",
    "directory": "not a regular file (a directory)",
    # a link out of the policies directory is refused before it is read (CLI N12)
    "device": "a symbolic link to a file outside the policies directory (copy the file in)",
    "dangling": "cannot read: No such file or directory",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
@pytest.mark.parametrize("rel", ["baseline.yml", "elections/autreville-2027.yml"])
def test_policy_file_that_is_not_a_regular_file(policies: Path, kind: str, rel: str) -> None:
    path = policies / rel
    if path.exists():
        path.unlink()
    _special(kind, path)
    if kind in ("fifo", "device"):  # in a child: these hung or ate memory before the fix
        error = one_error(cli("policy", "validate", str(policies), timeout=20))
        assert error == f"{path}: {EXPECTED[kind]}"
    else:
        with pytest.raises(PolicyError) as caught:
            load_policies(policies)
        assert [str(p) for p in caught.value.problems] == [f"{path}: {EXPECTED[kind]}"]


def test_policy_file_too_large(policies: Path) -> None:
    path = policies / "baseline.yml"
    with path.open("a", encoding="utf-8") as handle:
        handle.write("#" * 1_000_001 + "\n")
    with pytest.raises(PolicyError, match="file larger than 1000000 bytes"):
        load_policies(policies)


SHADOW_LINE = "root:$6$SECRETSALT$abcdefghijklmnopqrstuvwxyz0123456789:19000:0:99999:7:::"


def test_symlink_out_of_the_policies_directory_is_not_quoted(
    policies: Path, tmp_path: Path
) -> None:
    # CLI review N12: the whole first line of the link's target was in the error
    secret = tmp_path / "fake-shadow"
    secret.write_text(SHADOW_LINE + "\n")
    link = policies / "elections" / "zz.yml"
    link.symlink_to(secret)
    with pytest.raises(PolicyError) as caught:
        load_policies(policies)
    assert [str(p) for p in caught.value.problems] == [
        f"{link}: a symbolic link to a file outside the policies directory (copy the file in)"
    ]
    assert "SECRETSALT" not in str(caught.value)
    # a link that stays inside the policies directory is still followed
    link.unlink()
    (policies / ELECTION).rename(policies / "ville.txt")
    link.symlink_to(policies / "ville.txt")
    with pytest.raises(PolicyError, match="zz.yml:"):
        load_policies(policies)  # read and validated (its id is not the file's name)


def test_a_long_unknown_key_is_shown_cut(policies: Path) -> None:
    copied = policies / "elections" / "zz.yml"
    copied.write_text(SHADOW_LINE + "\n")
    with pytest.raises(PolicyError) as caught:
        load_policies(policies)
    text = str(caught.value)
    assert "klmnop" not in text and "19000" not in text  # the hash and the rest: not shown
    assert f"{copied}:1: root:$6$SECRETSALT$abcdefghij...: unknown field" in text


def test_utf16_file_is_named_utf16(policies: Path) -> None:
    path = policies / "baseline.yml"
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    with pytest.raises(PolicyError) as caught:
        load_policies(policies)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1: UTF-16 text (a byte-order mark); save the file as UTF-8"
    ]


def test_latin1_byte_reports_its_real_line(policies: Path) -> None:
    path = policies / ELECTION
    lines = path.read_bytes().split(b"\n")
    column = len(lines[30]) + len(b" # ") + 1
    lines[30] += b" # \xe9"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(PolicyError) as caught:
        load_policies(policies)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:31: not UTF-8 text (byte 0xe9 at column {column}); save the file as UTF-8"
    ]


def test_policies_argument_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(PolicyError, match="afile: not a directory"):
        load_policies(afile)


@pytest.mark.parametrize("kind", ["fifo", "device", "directory-as-file"])
def test_agent_config_that_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    config = tmp_path / "agent.json"
    if kind == "fifo":
        os.mkfifo(config)
    elif kind == "device":
        config.symlink_to("/dev/zero")
    else:
        config.mkdir()
    code = (
        "import sys; from isoloir.policy import load_rendered, PolicyError\n"
        "try:\n    load_rendered(sys.argv[1])\n"
        "except PolicyError as exc:\n    print(exc, file=sys.stderr); sys.exit(2)\n"
    )
    result = child(code, str(config), timeout=20)
    assert one_error(result).startswith(f"{config}: not a regular file (")


def test_scan_config_fifo_is_one_line_not_a_hang(tmp_path: Path) -> None:
    config = tmp_path / "fifo.json"
    os.mkfifo(config)
    result = cli("scan", "--config", str(config), "--shares", "--share-root", str(tmp_path))
    assert one_error(result) == f"{config}: not a regular file (a named pipe)"


def test_agent_config_is_read_with_a_bound(tmp_path: Path) -> None:
    config = tmp_path / "agent.json"
    with config.open("wb") as handle:
        handle.truncate(policy_loader.MAX_RENDERED_BYTES + 1)  # sparse: no disk used
    with pytest.raises(PolicyError, match=r"file larger than 16000000 bytes"):
        load_rendered(config)


def test_agent_config_not_utf8_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "agent.json"
    config.write_bytes(b'{\n  "format": 1,\n  "x": "\xe9"\n}\n')
    with pytest.raises(PolicyError) as caught:
        load_rendered(config)
    assert [str(p) for p in caught.value.problems] == [
        f"{config}:3: not UTF-8 text (byte 0xe9 at column 9); save the file as UTF-8"
    ]


# ----------------------------------------------- render --out (D1)


def tree(root: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[rel] = path.read_bytes()
        else:
            found[rel] = "dir"
    return found


def render_error(out: Path) -> str:
    return one_error(cli("policy", "render", "--policies", str(EXAMPLE), "--out", str(out)))


def test_render_onto_a_file(tmp_path: Path) -> None:
    out = tmp_path / "afile"
    out.write_text("kept")
    assert render_error(out) == f"render: cannot write {out}: not a directory; nothing was written"
    assert tree(tmp_path) == {"afile": b"kept"}


def test_render_into_a_half_existing_tree_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "rhalf"
    out.mkdir()
    (out / "agent").write_text("in the way")
    before = tree(tmp_path)
    error = render_error(out)
    assert error == f"render: cannot write {out / 'agent'}: not a directory; nothing was written"
    assert tree(tmp_path) == before


def test_render_through_a_dangling_symlink(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "terraform").symlink_to(tmp_path / "nowhere")
    before = tree(tmp_path)
    error = render_error(out)
    assert error.endswith(
        f"cannot write {out / 'terraform'}: dangling symbolic link; nothing was written"
    )
    assert tree(tmp_path) == before


def test_render_onto_an_output_that_is_a_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "agent/agent.json").mkdir(parents=True)
    before = tree(tmp_path)
    error = render_error(out)
    assert error.endswith(
        f"cannot write {out / 'agent/agent.json'}: is a directory; nothing was written"
    )
    assert tree(tmp_path) == before


def test_render_to_an_unwritable_place(tmp_path: Path) -> None:
    error = render_error(Path("/proc/isoloir-render"))
    assert error.startswith("render: cannot write /proc/isoloir-render")


def test_render_again_replaces_every_output_and_leaves_no_temporary(tmp_path: Path) -> None:
    assert main(["policy", "render", "--policies", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    (tmp_path / "agent/agent.json").write_text("stale")
    assert main(["policy", "render", "--policies", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert names == [
        "agent/agent.json",
        "ansible/isoloir_vars.json",
        "terraform/terraform.tfvars.json",
    ]
    assert load_rendered(tmp_path / "agent/agent.json") == load_policies(EXAMPLE)
    assert oct((tmp_path / "agent/agent.json").stat().st_mode & 0o777) == oct(0o640)


# ------------------------------------------------ infra tfvars (D19)


@pytest.mark.parametrize(
    ("content", "why"),
    [(b"\xb0\x01garbage", "not UTF-8 JSON"), (b"{\n,}", "not UTF-8 JSON")],
)
def test_infra_tfvars_not_json_names_the_file(tmp_path: Path, content: bytes, why: str) -> None:
    rendered = tmp_path / "rendered"
    tfvars = rendered / "terraform/terraform.tfvars.json"
    tfvars.parent.mkdir(parents=True)
    tfvars.write_bytes(content)
    result = cli(
        "infra",
        "plan",
        "--target",
        "local",
        "--rendered",
        str(rendered),
        "--run-dir",
        str(tmp_path / "run"),
    )
    error = one_error(result)
    assert error.startswith(f"error: {tfvars}: {why}")
    assert error.endswith("re-run `isoloir policy render`")
