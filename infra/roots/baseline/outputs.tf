output "account_id" {
  description = "The AWS account id."
  value       = module.account_baseline.account_id
}

output "user_arns" {
  description = "IAM user ARN of each person, by id (the election roots name members by it)."
  value       = module.account_baseline.user_arns
}

output "agent_role_arn" {
  description = "ARN of the agents' role."
  value       = module.account_baseline.agent_role_arn
}

output "agent_instance_profile" {
  description = "Instance profile of the agents' role."
  value       = module.account_baseline.agent_instance_profile
}

output "human_groups" {
  description = "IAM groups of humans, each with the MFA-required policy attached."
  value       = module.account_baseline.human_groups
}

output "mfa_policy_arn" {
  description = "ARN of the MFA-required policy."
  value       = module.account_baseline.mfa_policy_arn
}

output "admin_principal_arns" {
  description = "Principals excepted from the election buckets' data deny besides members and agents."
  value       = local.admin_principals
}
