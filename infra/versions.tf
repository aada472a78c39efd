terraform {
  # Cross-variable validation (an election's region within allowed_regions) needs 1.9.
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # Local target: local state under .run/ (set by the driver with -state).
  # Production: copy backend.s3.tf.example to backend.tf (EU bucket, encrypted, locked).
}
