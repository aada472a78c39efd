output "elections" {
  description = "Per election held in this region: bucket, key and region."
  value = {
    for k, m in module.election : k => {
      bucket_name = m.bucket_name
      bucket_arn  = m.bucket_arn
      kms_key_arn = m.kms_key_arn
      kms_alias   = m.kms_alias
      region      = m.region
    }
  }
}

output "log_bucket_name" {
  description = "The region's access-log bucket."
  value       = aws_s3_bucket.logs.id
}

output "host" {
  description = "The region's file-share host, or null when not created."
  value = local.host_needed ? {
    instance_id = module.host[0].instance_id
    private_ip  = module.host[0].private_ip
    public_ip   = module.host[0].public_ip
    # The encrypted data volume; the inventory passes it as isoloir_data_volume_id.
    data_volume_id = module.host[0].data_volume_id
    elections      = sort(local.host_elections)
    region         = var.region
  } : null
}

output "log_bucket_region" {
  description = "This module's region (key of the root's log_buckets output)."
  value       = var.region
}
