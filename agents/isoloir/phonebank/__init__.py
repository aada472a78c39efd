"""Phone banking: calling hours and filtered call lists (issue 23, item 8)."""
