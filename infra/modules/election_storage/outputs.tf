output "bucket_name" {
  description = "The election's bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the election's bucket."
  value       = aws_s3_bucket.this.arn
}

output "kms_key_arn" {
  description = "ARN of the election's KMS key (scheduled for deletion after the purge)."
  value       = aws_kms_key.this.arn
}

output "kms_alias" {
  description = "Alias of the election's KMS key."
  value       = aws_kms_alias.this.name
}

output "region" {
  description = "Region holding the election's data."
  value       = var.region
}
