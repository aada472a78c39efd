output "agent" {
  description = "The agents' role policy (JSON): the same size for 1 or 577 elections."
  value       = jsonencode(local.agent)
}

output "people_data" {
  description = "The people group's data policy (JSON): the party's election buckets and keys; each election's bucket and key policy narrow it to the election's members."
  value       = jsonencode(local.people_data)
}

output "mfa_required" {
  description = "MFA-01 (JSON): deny everything but MFA self-service until the caller signed in with MFA."
  value       = jsonencode(local.mfa_required)
}
