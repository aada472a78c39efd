"""Policies: the one source of truth (see docs/contracts.md)."""

from isoloir.policy.loader import PolicyError, Problem, load_policies, load_rendered
from isoloir.policy.model import Dataset, Election, Policies

__all__ = [
    "Dataset",
    "Election",
    "Policies",
    "PolicyError",
    "Problem",
    "load_policies",
    "load_rendered",
]
