"""The campaign mail guard: the policies applied to every message the party's
relay receives (docs/mailguard.md). `guard.Guard.evaluate` decides; the relay's
adapter applies the verdict."""
