"""The controller: what runs on the operator's machine and never on a host.

Deploy driver, demo, preflight, sandbox hosts, the AWS emulator, the local
target and its alert sink, the Terraform runner and the inventory. The
wheel the hosts install is built without this package (isoloir.controller.
inventory.build_wheelhouse); nothing outside it imports it."""
