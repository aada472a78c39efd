# Split layout (ISOLOIR_TF_LAYOUT=split): the account's baseline alone, once.
# Its outputs are what the region and election roots need from it; the driver
# writes them into those roots' variable files (docs/infra.md).

data "aws_caller_identity" "current" {}

# The deploying principal as a bucket policy sees it (infra/main.tf).
data "aws_iam_session_context" "current" {
  arn = data.aws_caller_identity.current.arn
}

locals {
  provider_region = var.default_region # the account's resources: the party's default region
  admin_principals = sort(distinct(concat(
    length(var.deployer_principal_arns) > 0 ? var.deployer_principal_arns : [data.aws_iam_session_context.current.issuer_arn],
    var.break_glass_role_arns,
  )))
}

module "account_baseline" {
  source = "../../modules/account_baseline"

  org_slug                           = var.org_slug
  password_policy                    = var.password_policy
  people                             = var.people
  administrators                     = var.administrators
  manage_account_public_access_block = var.manage_account_public_access_block
  tags                               = local.tags
}
