# Split layout (ISOLOIR_TF_LAYOUT=split): one instance per region holding
# elections. The region module with no election storage (that lives in the
# election roots): the region's access-log bucket, and its file-share host
# when hosts are created, which serves `host_elections`.

locals {
  provider_region = var.region
  # SMTP out: the alerts' server and the mail guard's upstream (infra/main.tf).
  smtp_egress_ports = distinct(concat(
    var.mail_guard_enabled && var.mail_upstream != null ? [var.mail_upstream.port] : [],
    var.alert_smtp_port == null ? [] : [var.alert_smtp_port],
  ))
}

module "region" {
  source = "../../modules/region"

  region                   = var.region
  elections                = {}
  host_elections           = var.create_hosts ? var.host_elections : []
  default_region           = var.default_region
  org_slug                 = var.org_slug
  log_bucket_name          = var.log_bucket_name
  kms_deletion_window_days = var.kms_deletion_window_days
  account_id               = var.account_id
  admin_networks           = var.admin_networks
  mail_submission          = var.mail_guard_enabled
  smtp_egress_ports        = local.smtp_egress_ports
  lifecycle_backstop_days  = var.lifecycle_backstop_days
  deploy_public_key        = var.deploy_public_key
  create_host              = var.create_hosts
  host_image_id            = var.host_image_id
  host_detailed_monitoring = var.host_detailed_monitoring
  log_bucket_force_destroy = var.force_destroy_logs
  subnet_id                = var.subnet_id
  instance_profile         = var.instance_profile
  # Named only in election buckets' and keys' policies, none of which is here.
  agent_role_arn       = ""
  admin_principal_arns = []
  tags                 = local.tags
}
