"""One module per check; the module name is the check id (see registry.py)."""
