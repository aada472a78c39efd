# Local target and tests: local state; the driver (isoloir.controller.infra.roots)
# passes -backend-config=path=.run/infra/<target>/roots/<instance>.tfstate.
# Production: an S3 backend as for the single root (docs/infra.md); the driver
# then passes one key per root instance.
terraform {
  backend "local" {}
}
