# Local target and tests: local state; `isoloir infra` passes its path with
# -backend-config=path=.run/infra/<target>/terraform.tfstate.
# Production: replace this file with backend.s3.tf.example (see docs/infra.md).
terraform {
  backend "local" {}
}
