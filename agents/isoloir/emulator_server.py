"""moto's server, with one correction for bucket policies; run by `isoloir.emulator`.

moto evaluates a bucket policy with no request context: no caller, no TLS
flag, no headers. Any statement with a `Condition` then comes out as DENIED,
whether it is a Deny or an Allow and whatever the request. Isoloir's bucket
policy is made of conditional Deny statements (non-TLS requests, puts not
encrypted with the election's key, principals other than the election's), so
under stock moto nobody, not even the election's members or the agent, can put,
read or delete an object in a Terraform-made bucket.

Here a conditional statement is left out of moto's evaluation (it cannot be
evaluated without the context), and unconditional statements keep their effect,
so a `Principal: "*"` Allow still makes an object public. The policy stored and
returned by the API is untouched: the agents read and check the real one, and
its effect is proven with `isoloir.infra.evaluate` (docs/infra.md). The emulator
serves TLS only, so the TLS-only statement has nothing to refuse.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _unconditional(policy: bytes | str) -> str | None:
    data = json.loads(policy)
    statements = data.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = [s for s in statements if "Condition" not in s]
    if not kept:
        return None
    return json.dumps({**data, "Statement": kept})


def patch_moto() -> None:
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = _unconditional(self.policy)
        if policy is None:
            return PermissionResult.NEUTRAL
        return IAMPolicy(policy).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def main() -> int:
    patch_moto()
    from moto.server import main as moto_main

    sys.argv[0] = "moto_server"
    moto_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
