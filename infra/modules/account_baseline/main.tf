# The account's baseline: password policy, MFA for every human, two groups
# (people, admins: the same number for any number of elections), the agents'
# role, the account-level public access block. The identity policies come from
# modules/identity_policies and do not grow with the elections; each election's
# bucket and key policies name its members (docs/infra.md, "The access model").

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  path       = "/isoloir/"
  prefix     = "isoloir-${var.org_slug}"
}

module "policies" {
  source = "../identity_policies"

  org_slug   = var.org_slug
  account_id = local.account_id
  partition  = local.partition
}

# ---------------------------------------------------------- passwords | PWD

resource "aws_iam_account_password_policy" "this" {
  # checkov:skip=CKV_AWS_9:CNIL deliberation 2022-100 dropped forced periodic change; max_password_age is set only when the policy asks for it.
  minimum_password_length        = var.password_policy.minimum_length
  require_lowercase_characters   = var.password_policy.require_lowercase
  require_uppercase_characters   = var.password_policy.require_uppercase
  require_numbers                = var.password_policy.require_numbers
  require_symbols                = var.password_policy.require_symbols
  password_reuse_prevention      = var.password_policy.reuse_prevention > 0 ? var.password_policy.reuse_prevention : null
  max_password_age               = var.password_policy.max_age_days > 0 ? var.password_policy.max_age_days : null
  allow_users_to_change_password = true
  hard_expiry                    = false
}

# ---------------------------------------------------------- people, groups

resource "aws_iam_user" "person" {
  # checkov:skip=CKV_AWS_273:The kit targets small parties without an identity provider; every user is forced to MFA by the group policy below.
  for_each = toset(var.people)

  name = each.value
  path = local.path
  # Off-boarding is one deploy: the person's console password, access keys and
  # MFA devices (made outside Terraform) go with the user; without this, IAM
  # refuses DeleteUser with DeleteConflict.
  force_destroy = true
  tags          = merge(var.tags, { "isoloir:person" = each.value })
}

resource "aws_iam_group" "people" {
  name = "${local.prefix}-people"
  path = local.path
}

resource "aws_iam_group_membership" "people" {
  name  = "${local.prefix}-people"
  group = aws_iam_group.people.name
  users = [for p in sort(var.people) : aws_iam_user.person[p].name]
}

resource "aws_iam_group" "admins" {
  name = "${local.prefix}-admins"
  path = local.path
}

resource "aws_iam_group_membership" "admins" {
  name  = "${local.prefix}-admins"
  group = aws_iam_group.admins.name
  users = [for p in sort(var.administrators) : aws_iam_user.person[p].name]
}

# Every person may use the party's election buckets and keys; each election's
# bucket and key policies deny them to anyone but its members.
resource "aws_iam_policy" "people_data" {
  name        = "${local.prefix}-election-data"
  path        = local.path
  description = "The party's election buckets and keys; each election's bucket and key policies keep them to its members."
  policy      = module.policies.people_data
  tags        = var.tags
}

resource "aws_iam_group_policy_attachment" "people_data" {
  group      = aws_iam_group.people.name
  policy_arn = aws_iam_policy.people_data.arn
}

# ---------------------------------------------------------- MFA | MFA-01

resource "aws_iam_policy" "mfa_required" {
  name        = "${local.prefix}-mfa-required"
  path        = local.path
  description = "MFA-01: deny everything but MFA self-service until the caller signed in with MFA."
  policy      = module.policies.mfa_required
  tags        = var.tags
}

locals {
  human_groups = { "people" = aws_iam_group.people.name, "admins" = aws_iam_group.admins.name }
}

resource "aws_iam_group_policy_attachment" "mfa_people" {
  group      = aws_iam_group.people.name
  policy_arn = aws_iam_policy.mfa_required.arn
}

resource "aws_iam_group_policy_attachment" "mfa_admins" {
  group      = aws_iam_group.admins.name
  policy_arn = aws_iam_policy.mfa_required.arn
}

# ---------------------------------------------------------- agent role

data "aws_iam_policy_document" "agent_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "agent" {
  name                 = "${local.prefix}-agent"
  path                 = local.path
  description          = "Isoloir agents on the file-share hosts: exposure scan, remediation, retention purge, identity audit."
  assume_role_policy   = data.aws_iam_policy_document.agent_trust.json
  max_session_duration = 3600
  tags                 = var.tags
}

# Inline: a role's inline policies may total 10,240 characters (IAM quotas);
# this one is the same size for any number of elections (modules/identity_policies).
resource "aws_iam_role_policy" "agent" {
  # checkov:skip=CKV_AWS_355:Resource "*" only on the Inventory and AuditIdentities statements: account-wide listings (ListAllMyBuckets, ListKeys, ListAccessPoints, ListUsers, the credential report, the account's public access block and password policy) and the per-user reads of the identity audit, which must see every user of the account.
  # checkov:skip=CKV_AWS_356:ListAllMyBuckets, GetAccountPublicAccessBlock and the IAM audit calls are account-wide and take no resource ARN; everything else is scoped to the party's buckets and tagged keys.
  # checkov:skip=CKV_AWS_108:The agent must read the election buckets' objects to find personal data left exposed and to keep consenting contacts before the purge (scoped to the party's buckets).
  # checkov:skip=CKV_AWS_111:The writes are the documented remediations and the purge, scoped to the party's buckets and tagged keys, dated by each election's bucket and key policy.
  # checkov:skip=CKV_AWS_109:PutBucketAcl/PutObjectAcl/PutBucketPublicAccessBlock are the remediations the policy allows; scoped to the party's buckets.
  name   = "${local.prefix}-agent"
  role   = aws_iam_role.agent.id
  policy = module.policies.agent
}

resource "aws_iam_instance_profile" "agent" {
  name = "${local.prefix}-agent"
  path = local.path
  role = aws_iam_role.agent.name
  tags = var.tags
}

# ---------------------------------------------------------- account S3 | S3-PAB

resource "aws_s3_account_public_access_block" "this" {
  count = var.manage_account_public_access_block ? 1 : 0

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}
