terraform {
  # 1.9: cross-variable validation (an election's region within allowed_regions);
  # 1.10: the S3 backend's `use_lockfile` (backend.s3.tf.example).
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # Local target: local state under .run/ (the driver passes -backend-config=path=).
  # Production: copy backend.s3.tf.example to backend.tf and fill in
  # backend.aws.hcl (EU bucket, encrypted, locked); see docs/infra.md.
}
