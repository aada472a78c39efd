output "bucket" {
  description = "The election bucket's policy (JSON)."
  value       = jsonencode(local.bucket)
}

output "key" {
  description = "The election key's policy (JSON)."
  value       = jsonencode(local.key)
}
