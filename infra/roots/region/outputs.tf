output "log_bucket_name" {
  description = "The region's access-log bucket."
  value       = module.region.log_bucket_name
}

output "log_bucket_region" {
  description = "This root instance's region."
  value       = module.region.log_bucket_region
}

output "host" {
  description = "The region's file-share host, or null when not created."
  value       = module.region.host
}
