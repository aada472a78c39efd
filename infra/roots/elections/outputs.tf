output "elections" {
  description = "Per election of this batch: region, bucket and KMS key."
  value = {
    for k, m in module.election : k => {
      region      = m.region
      bucket_name = m.bucket_name
      bucket_arn  = m.bucket_arn
      kms_key_arn = m.kms_key_arn
      kms_alias   = m.kms_alias
    }
  }
}
