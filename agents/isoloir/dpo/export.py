"""The answer to an access request (art. 15): what is held about the person,
where, since when, for what purpose, on what legal basis, from which source,
until when, and whether they are on the opt-out list.

Written for the DPO, who sends it to the person: a JSON file created 0600
(never replaced), with the values of their rows. The console only ever shows
counts and paths.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from isoloir.dpo import search, wording
from isoloir.policy.model import Policies

FORMAT = "isoloir-access-export/1"


def _dataset(policies: Policies, p: search.Place, lang: str) -> dict[str, Any]:
    ds = p.dataset
    election = None
    if p.election:
        try:
            election = policies.election(p.election)
        except KeyError:
            election = None
    out: dict[str, Any] = {
        "election": p.election,
        "election_label": election.label if election else None,
        "dataset": ds.name if ds else None,
    }
    if ds is None:
        out.update(origin=None, origin_text=wording.UNDECLARED[lang], legal_basis=None)
    else:
        out.update(
            origin=ds.origin,
            origin_text=wording.ORIGINS[lang].get(ds.origin, ds.origin),
            legal_basis=ds.legal_basis,
            legal_basis_text=wording.LEGAL_BASES[lang].get(ds.legal_basis, ds.legal_basis),
            category=ds.category,
        )
        if election is not None:
            out["kept_until"] = (
                election.retention_due.isoformat()
                if ds.campaign_specific
                else wording.permanent(policies, lang, ds)
            )
    if p.kind == "contacts":
        out["kept_because"] = wording.KEPT_CONTACTS[lang]
    return out


def document(
    policies: Policies, result: search.Result, request_id: str, now: datetime, lang: str = "fr"
) -> dict[str, Any]:
    org = policies.baseline.organisation
    places = []
    for p in result.places:
        places.append(
            {
                "where": p.kind,
                "location": p.location,
                "version_id": p.version_id or None,
                "current_version": p.latest if p.kind == "bucket" else None,
                "last_modified": p.last_modified or None,
                "sheet": p.sheet,
                **_dataset(policies, p, lang),
                "rows": [
                    {"row": r.row, "matched_by": list(r.matched_by), "data": dict(r.fields)}
                    for r in p.rows
                ],
            }
        )
    return {
        "format": FORMAT,
        "request": request_id,
        "generated_at": now.isoformat(),
        "controller": {
            "name": org.controller_name,
            "address": org.controller_address,
            "dpo": org.dpo_contact,
            "rights_contact": org.rights_contact,
        },
        "places": places,
        "opt_out": [
            {"identifier": o.kind, "since": o.added_at, "recorded_by": o.source}
            for o in result.opt_outs
        ],
        "opt_out_list_unavailable": result.opt_out_list or None,
        "not_searched": [{"location": loc, "reason": why} for loc, why in result.unsearched],
        "recipients": wording.recipients(policies, lang),
        "rights": wording.RIGHTS[lang],
    }


def write(path: Path, doc: dict[str, Any]) -> None:
    """Create `path` 0600 (never replace a file: each answer is its own)."""
    data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
