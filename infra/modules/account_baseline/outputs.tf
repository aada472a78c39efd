output "user_arns" {
  description = "IAM user ARN of each person, by id."
  value       = { for k, u in aws_iam_user.person : k => u.arn }
}

output "agent_role_arn" {
  description = "ARN of the agents' role."
  value       = aws_iam_role.agent.arn
}

output "agent_role_name" {
  description = "Name of the agents' role."
  value       = aws_iam_role.agent.name
}

output "agent_instance_profile" {
  description = "Instance profile carrying the agents' role, for the file-share hosts."
  value       = aws_iam_instance_profile.agent.name
}

output "human_groups" {
  description = "The two groups of humans, people and admins (the MFA policy is attached to each)."
  value       = local.human_groups
}

output "mfa_policy_arn" {
  description = "ARN of the MFA-required managed policy."
  value       = aws_iam_policy.mfa_required.arn
}

output "account_id" {
  description = "The AWS account id."
  value       = local.account_id
}
