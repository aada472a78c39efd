"""Render the roles' Jinja templates and derived variables the way Ansible does,
for the host unit tests (no Ansible run, no host): role defaults and vars,
`bool`, `from_json`, `quote` and the `file` lookup, trim_blocks."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined
from jinja2.nativetypes import NativeEnvironment

ROLES = Path(__file__).resolve().parents[2] / "playbooks" / "roles"


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on", "y", "t"}
    return bool(value)


def _lookup(kind: str, path: str) -> str:
    assert kind in {"ansible.builtin.file", "file"}, kind
    return Path(path).read_text(encoding="utf-8").rstrip("\n")


def _env(native: bool) -> Any:
    from jinja2 import Environment

    env = (NativeEnvironment if native else Environment)(
        trim_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined
    )
    env.filters.update(
        bool=_bool,
        from_json=json.loads,
        quote=lambda v: shlex.quote(str(v)),
        urlencode=lambda v: str(v),
        regex_replace=lambda v, pattern, repl="": re.sub(pattern, repl, str(v)),
    )
    env.globals["lookup"] = _lookup
    return env


class RoleVars(Mapping[str, Any]):
    """A role's defaults and vars, overridden by `extra`, resolved lazily."""

    def __init__(self, role: str, extra: Mapping[str, Any]) -> None:
        self.raw: dict[str, Any] = {"ansible_managed": "Ansible managed"}
        for part in ("defaults", "vars"):
            f = ROLES / role / part / "main.yml"
            if f.exists():
                self.raw.update(yaml.safe_load(f.read_text()) or {})
        self.raw.update(extra)
        self.native = _env(True)
        self.cache: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self.raw:
            return self.native.globals[key]
        if key not in self.cache:
            self.cache[key] = self._resolve(self.raw[key])
        return self.cache[key]

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, str) and "{{" in value:
            tmpl = self.native.from_string(value.strip())
            ctx = tmpl.new_context(self, shared=True)
            return self.native.concat(tmpl.root_render_func(ctx))
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __contains__(self, key: object) -> bool:
        return key in self.raw or key in self.native.globals


def render(role: str, template: str, **extra: Any) -> str:
    """The text Ansible's `template` task would write for `template` of `role`."""
    env = _env(False)
    tmpl = env.from_string((ROLES / role / "templates" / template).read_text(encoding="utf-8"))
    ctx = tmpl.new_context(RoleVars(role, extra), shared=True)
    return str(env.concat(tmpl.root_render_func(ctx)))  # type: ignore[attr-defined]


def variable(role: str, name: str, **extra: Any) -> Any:
    return RoleVars(role, extra)[name]
