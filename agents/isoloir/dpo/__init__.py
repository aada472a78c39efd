"""The data-protection officer's tools: rights requests (find, export, erase one
person, with deadlines), the register of processing (art. 30). See docs/dpo.md."""
