# Split layout (ISOLOIR_TF_LAYOUT=split): one instance per batch of a region's
# elections (batch = a stable function of the election's id, chosen by the
# driver), holding only their storage: key, bucket and its settings and
# policies. Adding an election changes one batch's variables and no other root.

locals {
  provider_region = var.region
}

module "election" {
  source   = "../../modules/election_storage"
  for_each = var.elections

  election_id              = each.key
  region                   = var.region
  bucket_name              = each.value.bucket_name
  retention_date           = each.value.retention_date
  legal_hold               = each.value.legal_hold
  kms_deletion_window_days = var.kms_deletion_window_days
  log_bucket_name          = var.log_bucket_name
  member_arns              = each.value.member_arns
  agent_role_arn           = var.agent_role_arn
  admin_principal_arns     = var.admin_principal_arns
  campaign_prefixes        = each.value.campaign_prefixes
  lifecycle_backstop_days  = var.lifecycle_backstop_days
  account_id               = var.account_id
  tags                     = local.tags
}
