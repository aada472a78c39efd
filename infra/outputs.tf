output "account_id" {
  description = "The AWS account id."
  value       = local.account_id
}

output "elections" {
  description = "Per election: region, bucket and KMS key (read by Ansible and the agents). No IAM group: its members are named in its bucket and key policies."
  value = {
    for id, e in var.elections : id => {
      region      = e.region
      bucket_name = local.storage[id].bucket_name
      bucket_arn  = local.storage[id].bucket_arn
      kms_key_arn = local.storage[id].kms_key_arn
      kms_alias   = local.storage[id].kms_alias
    }
  }
}

output "bucket_names" {
  description = "Bucket of each election."
  value       = { for id, s in local.storage : id => s.bucket_name }
}

output "kms_key_arns" {
  description = "KMS key of each election."
  value       = { for id, s in local.storage : id => s.kms_key_arn }
}

output "hosts" {
  description = "File-share host per region holding elections: instance id, addresses, elections served."
  value       = local.hosts
}

output "file_share_hosts" {
  description = "The file-share hosts as the Ansible inventory reads them (isoloir.controller.inventory): name => address (private: reached from the admin networks), SSH user, region, elections, data volume id."
  value = {
    for region, h in local.hosts : "isoloir-shares-${region}" => {
      address   = h.private_ip
      ssh_user  = "isoloir-deploy"
      region    = region
      elections = h.elections
      # The encrypted EBS data volume Ansible mounts on the share root (found by its serial).
      data_volume_id = h.data_volume_id
    }
  }
}

output "log_buckets" {
  description = "Access-log bucket per region in use."
  value       = { for m in local.regional : m.log_bucket_region => m.log_bucket_name }
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
  description = "Principals excepted from the election buckets' data deny besides members and agents: the deployer (refresh needs HeadBucket) and the break-glass roles."
  value       = local.admin_principals
}
