"""Provisioning: the Terraform driver (`isoloir infra`) and its targets."""
