output "bucket" {
  description = "The election bucket's policy (JSON)."
  value       = jsonencode(local.bucket)

  precondition {
    # S3 User Guide, "Bucket policies and user policies": 20 KB. isoloir policy
    # validate refuses such an election first (isoloir.policy.access).
    condition     = length(jsonencode(local.bucket)) <= 20480
    error_message = "The election's bucket policy would exceed S3's 20 KB: too many members (docs/infra.md, \"The access model\")."
  }
}

output "key" {
  description = "The election key's policy (JSON)."
  value       = jsonencode(local.key)

  precondition {
    # KMS Developer Guide, "Key policy format": 32,768 bytes.
    condition     = length(jsonencode(local.key)) <= 32768
    error_message = "The election's key policy would exceed KMS's 32 KB: too many members (docs/infra.md, \"The access model\")."
  }
}
