# The root: the account baseline once, and per allowed EU region the region
# module (log bucket, election storage for_each, file-share host) with that
# region's provider alias. The log bucket of an allowed region stays when its
# last election is archived: access logs outlive the data. See docs/infra.md.

data "aws_caller_identity" "current" {}

# The deploying principal as a bucket policy sees it (aws:PrincipalArn): for an
# assumed-role session, the role's ARN with its path, not the session's ARN.
data "aws_iam_session_context" "current" {
  arn = data.aws_caller_identity.current.arn
}

locals {
  tags = merge(var.extra_tags, {
    "isoloir:org"        = var.org_slug
    "isoloir:managed-by" = "terraform"
  })
  account_id = data.aws_caller_identity.current.account_id

  # Who may touch an election's objects besides the agents' role: its members,
  # named in its bucket and key policies (docs/infra.md, "The access model").
  member_arns = {
    for id, e in var.elections : id => [for m in sort(e.members) : module.account_baseline.user_arns[m]]
  }

  # May list the election buckets (Terraform's refresh: HeadBucket = s3:ListBucket)
  # and manage their settings, never touch their objects: the deploying
  # principals declared in the policies (on the emulator, whoever runs the plan)
  # and the break-glass roles.
  admin_principals = sort(distinct(concat(
    length(var.deployer_principal_arns) > 0 ? var.deployer_principal_arns : [data.aws_iam_session_context.current.issuer_arn],
    var.break_glass_role_arns,
  )))

  by_region = {
    for r in ["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"] : r => {
      for id, e in var.elections : id => {
        bucket_name       = e.bucket_name
        retention_date    = e.retention_date
        legal_hold        = e.legal_hold
        member_arns       = local.member_arns[id]
        campaign_prefixes = e.campaign_prefixes
      } if e.region == r
    }
  }

  regional_common = {
    default_region           = var.default_region
    org_slug                 = var.org_slug
    log_bucket_name          = var.log_bucket_name
    kms_deletion_window_days = var.kms_deletion_window_days
    account_id               = local.account_id
    admin_networks           = var.admin_networks
    admin_principal_arns     = local.admin_principals
    lifecycle_backstop_days  = var.lifecycle_backstop_days
    mail_submission          = var.mail_guard_enabled
    # SMTP out: the alerts' server and the mail guard's upstream, each on its own port.
    smtp_egress_ports = distinct(concat(
      var.mail_guard_enabled && var.mail_upstream != null ? [var.mail_upstream.port] : [],
      var.alert_smtp_port == null ? [] : [var.alert_smtp_port],
    ))
  }
}

module "account_baseline" {
  source = "./modules/account_baseline"

  org_slug                           = var.org_slug
  password_policy                    = var.password_policy
  people                             = var.people
  administrators                     = var.administrators
  manage_account_public_access_block = var.manage_account_public_access_block
  tags                               = local.tags
}

module "eu_west_3" {
  source    = "./modules/region"
  count     = contains(var.allowed_regions, "eu-west-3") ? 1 : 0
  providers = { aws = aws.eu_west_3 }

  region                   = "eu-west-3"
  elections                = local.by_region["eu-west-3"]
  default_region           = local.regional_common.default_region
  org_slug                 = local.regional_common.org_slug
  log_bucket_name          = local.regional_common.log_bucket_name
  kms_deletion_window_days = local.regional_common.kms_deletion_window_days
  account_id               = local.regional_common.account_id
  admin_networks           = local.regional_common.admin_networks
  mail_submission          = local.regional_common.mail_submission
  smtp_egress_ports        = local.regional_common.smtp_egress_ports
  admin_principal_arns     = local.regional_common.admin_principal_arns
  lifecycle_backstop_days  = local.regional_common.lifecycle_backstop_days
  deploy_public_key        = var.deploy_public_key
  create_host              = var.create_hosts
  host_image_id            = lookup(var.host_image_ids, "eu-west-3", null)
  host_detailed_monitoring = var.host_detailed_monitoring
  log_bucket_force_destroy = var.force_destroy_logs
  subnet_id                = lookup(var.subnet_ids, "eu-west-3", null)
  instance_profile         = module.account_baseline.agent_instance_profile
  agent_role_arn           = module.account_baseline.agent_role_arn
  tags                     = local.tags
}

module "eu_west_1" {
  source    = "./modules/region"
  count     = contains(var.allowed_regions, "eu-west-1") ? 1 : 0
  providers = { aws = aws.eu_west_1 }

  region                   = "eu-west-1"
  elections                = local.by_region["eu-west-1"]
  default_region           = local.regional_common.default_region
  org_slug                 = local.regional_common.org_slug
  log_bucket_name          = local.regional_common.log_bucket_name
  kms_deletion_window_days = local.regional_common.kms_deletion_window_days
  account_id               = local.regional_common.account_id
  admin_networks           = local.regional_common.admin_networks
  mail_submission          = local.regional_common.mail_submission
  smtp_egress_ports        = local.regional_common.smtp_egress_ports
  admin_principal_arns     = local.regional_common.admin_principal_arns
  lifecycle_backstop_days  = local.regional_common.lifecycle_backstop_days
  deploy_public_key        = var.deploy_public_key
  create_host              = var.create_hosts
  host_image_id            = lookup(var.host_image_ids, "eu-west-1", null)
  host_detailed_monitoring = var.host_detailed_monitoring
  log_bucket_force_destroy = var.force_destroy_logs
  subnet_id                = lookup(var.subnet_ids, "eu-west-1", null)
  instance_profile         = module.account_baseline.agent_instance_profile
  agent_role_arn           = module.account_baseline.agent_role_arn
  tags                     = local.tags
}

module "eu_central_1" {
  source    = "./modules/region"
  count     = contains(var.allowed_regions, "eu-central-1") ? 1 : 0
  providers = { aws = aws.eu_central_1 }

  region                   = "eu-central-1"
  elections                = local.by_region["eu-central-1"]
  default_region           = local.regional_common.default_region
  org_slug                 = local.regional_common.org_slug
  log_bucket_name          = local.regional_common.log_bucket_name
  kms_deletion_window_days = local.regional_common.kms_deletion_window_days
  account_id               = local.regional_common.account_id
  admin_networks           = local.regional_common.admin_networks
  mail_submission          = local.regional_common.mail_submission
  smtp_egress_ports        = local.regional_common.smtp_egress_ports
  admin_principal_arns     = local.regional_common.admin_principal_arns
  lifecycle_backstop_days  = local.regional_common.lifecycle_backstop_days
  deploy_public_key        = var.deploy_public_key
  create_host              = var.create_hosts
  host_image_id            = lookup(var.host_image_ids, "eu-central-1", null)
  host_detailed_monitoring = var.host_detailed_monitoring
  log_bucket_force_destroy = var.force_destroy_logs
  subnet_id                = lookup(var.subnet_ids, "eu-central-1", null)
  instance_profile         = module.account_baseline.agent_instance_profile
  agent_role_arn           = module.account_baseline.agent_role_arn
  tags                     = local.tags
}

module "eu_north_1" {
  source    = "./modules/region"
  count     = contains(var.allowed_regions, "eu-north-1") ? 1 : 0
  providers = { aws = aws.eu_north_1 }

  region                   = "eu-north-1"
  elections                = local.by_region["eu-north-1"]
  default_region           = local.regional_common.default_region
  org_slug                 = local.regional_common.org_slug
  log_bucket_name          = local.regional_common.log_bucket_name
  kms_deletion_window_days = local.regional_common.kms_deletion_window_days
  account_id               = local.regional_common.account_id
  admin_networks           = local.regional_common.admin_networks
  mail_submission          = local.regional_common.mail_submission
  smtp_egress_ports        = local.regional_common.smtp_egress_ports
  admin_principal_arns     = local.regional_common.admin_principal_arns
  lifecycle_backstop_days  = local.regional_common.lifecycle_backstop_days
  deploy_public_key        = var.deploy_public_key
  create_host              = var.create_hosts
  host_image_id            = lookup(var.host_image_ids, "eu-north-1", null)
  host_detailed_monitoring = var.host_detailed_monitoring
  log_bucket_force_destroy = var.force_destroy_logs
  subnet_id                = lookup(var.subnet_ids, "eu-north-1", null)
  instance_profile         = module.account_baseline.agent_instance_profile
  agent_role_arn           = module.account_baseline.agent_role_arn
  tags                     = local.tags
}

module "eu_south_1" {
  source    = "./modules/region"
  count     = contains(var.allowed_regions, "eu-south-1") ? 1 : 0
  providers = { aws = aws.eu_south_1 }

  region                   = "eu-south-1"
  elections                = local.by_region["eu-south-1"]
  default_region           = local.regional_common.default_region
  org_slug                 = local.regional_common.org_slug
  log_bucket_name          = local.regional_common.log_bucket_name
  kms_deletion_window_days = local.regional_common.kms_deletion_window_days
  account_id               = local.regional_common.account_id
  admin_networks           = local.regional_common.admin_networks
  mail_submission          = local.regional_common.mail_submission
  smtp_egress_ports        = local.regional_common.smtp_egress_ports
  admin_principal_arns     = local.regional_common.admin_principal_arns
  lifecycle_backstop_days  = local.regional_common.lifecycle_backstop_days
  deploy_public_key        = var.deploy_public_key
  create_host              = var.create_hosts
  host_image_id            = lookup(var.host_image_ids, "eu-south-1", null)
  host_detailed_monitoring = var.host_detailed_monitoring
  log_bucket_force_destroy = var.force_destroy_logs
  subnet_id                = lookup(var.subnet_ids, "eu-south-1", null)
  instance_profile         = module.account_baseline.agent_instance_profile
  agent_role_arn           = module.account_baseline.agent_role_arn
  tags                     = local.tags
}

module "eu_south_2" {
  source    = "./modules/region"
  count     = contains(var.allowed_regions, "eu-south-2") ? 1 : 0
  providers = { aws = aws.eu_south_2 }

  region                   = "eu-south-2"
  elections                = local.by_region["eu-south-2"]
  default_region           = local.regional_common.default_region
  org_slug                 = local.regional_common.org_slug
  log_bucket_name          = local.regional_common.log_bucket_name
  kms_deletion_window_days = local.regional_common.kms_deletion_window_days
  account_id               = local.regional_common.account_id
  admin_networks           = local.regional_common.admin_networks
  mail_submission          = local.regional_common.mail_submission
  smtp_egress_ports        = local.regional_common.smtp_egress_ports
  admin_principal_arns     = local.regional_common.admin_principal_arns
  lifecycle_backstop_days  = local.regional_common.lifecycle_backstop_days
  deploy_public_key        = var.deploy_public_key
  create_host              = var.create_hosts
  host_image_id            = lookup(var.host_image_ids, "eu-south-2", null)
  host_detailed_monitoring = var.host_detailed_monitoring
  log_bucket_force_destroy = var.force_destroy_logs
  subnet_id                = lookup(var.subnet_ids, "eu-south-2", null)
  instance_profile         = module.account_baseline.agent_instance_profile
  agent_role_arn           = module.account_baseline.agent_role_arn
  tags                     = local.tags
}

locals {
  regional = concat(
    module.eu_west_3,
    module.eu_west_1,
    module.eu_central_1,
    module.eu_north_1,
    module.eu_south_1,
    module.eu_south_2
  )
  storage = merge([for m in local.regional : m.elections]...)
  hosts   = { for m in local.regional : m.host.region => m.host if m.host != null }
}
