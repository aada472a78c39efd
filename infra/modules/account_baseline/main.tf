# The account's baseline: password policy, MFA for every human, one group per
# election, the agents' role, the account-level public access block.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  path       = "/isoloir/"
  prefix     = "isoloir-${var.org_slug}"
  user_arn   = "arn:${local.partition}:iam::${local.account_id}:user/isoloir"
  # Every bucket Isoloir creates starts with the party's slug: read-only
  # settings of those. Writes and data go only to the election buckets and keys,
  # by name: never the access-log buckets, the Terraform state bucket or the
  # hosts' volume keys (docs/infra.md, "The agents' role").
  bucket_arns          = "arn:${local.partition}:s3:::${var.org_slug}-*"
  election_bucket_arns = sort([for id, e in var.elections : e.bucket_arn])
  election_key_arns    = sort([for id, e in var.elections : e.kms_key_arn])
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

resource "aws_iam_group" "election" {
  for_each = var.elections

  name = "${local.prefix}-el-${each.key}"
  path = local.path
}

resource "aws_iam_group_membership" "election" {
  for_each = var.elections

  name  = "${local.prefix}-el-${each.key}"
  group = aws_iam_group.election[each.key].name
  users = [for p in sort(each.value.members) : aws_iam_user.person[p].name]
}

data "aws_iam_policy_document" "election" {
  for_each = var.elections

  statement {
    sid       = "ListOwnBucket"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketVersions"]
    resources = [each.value.bucket_arn]
  }

  statement {
    sid       = "UseOwnObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${each.value.bucket_arn}/*"]
  }

  statement {
    sid       = "UseOwnKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [each.value.kms_key_arn]
  }
}

resource "aws_iam_group_policy" "election" {
  for_each = var.elections

  name   = "${local.prefix}-el-${each.key}-data"
  group  = aws_iam_group.election[each.key].name
  policy = data.aws_iam_policy_document.election[each.key].json
}

# ---------------------------------------------------------- MFA | MFA-01

data "aws_iam_policy_document" "mfa_required" {
  # checkov:skip=CKV_AWS_356:"*" appears only in the Deny statement (deny everything without MFA) and for account-wide read-only calls that have no resource ARN.
  statement {
    sid       = "ViewAccountPasswordRules"
    actions   = ["iam:GetAccountPasswordPolicy", "iam:ListVirtualMFADevices"]
    resources = ["*"]
  }

  statement {
    sid       = "ManageOwnPasswordAndMfa"
    actions   = ["iam:ChangePassword", "iam:GetUser", "iam:DeactivateMFADevice", "iam:EnableMFADevice", "iam:ListMFADevices", "iam:ResyncMFADevice"]
    resources = ["${local.user_arn}/$${aws:username}"]
  }

  statement {
    sid       = "CreateOwnVirtualMfa"
    actions   = ["iam:CreateVirtualMFADevice"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:mfa/*"]
  }

  statement {
    sid    = "DenyAllButMfaSelfServiceWithoutMfa"
    effect = "Deny"
    not_actions = [
      "iam:ChangePassword",
      "iam:CreateVirtualMFADevice",
      "iam:EnableMFADevice",
      "iam:GetAccountPasswordPolicy",
      "iam:GetMFADevice",
      "iam:GetUser",
      "iam:ListMFADevices",
      "iam:ListVirtualMFADevices",
      "iam:ResyncMFADevice",
      "sts:GetSessionToken",
    ]
    resources = ["*"]

    condition {
      test     = "BoolIfExists"
      variable = "aws:MultiFactorAuthPresent"
      values   = ["false"]
    }
  }
}

resource "aws_iam_policy" "mfa_required" {
  name        = "${local.prefix}-mfa-required"
  path        = local.path
  description = "MFA-01: deny everything but MFA self-service until the caller signed in with MFA."
  policy      = data.aws_iam_policy_document.mfa_required.json
  tags        = var.tags
}

locals {
  human_groups = merge(
    { "people" = aws_iam_group.people.name, "admins" = aws_iam_group.admins.name },
    { for k, g in aws_iam_group.election : "el-${k}" => g.name },
  )
}

resource "aws_iam_group_policy_attachment" "mfa_people" {
  group      = aws_iam_group.people.name
  policy_arn = aws_iam_policy.mfa_required.arn
}

resource "aws_iam_group_policy_attachment" "mfa_admins" {
  group      = aws_iam_group.admins.name
  policy_arn = aws_iam_policy.mfa_required.arn
}

resource "aws_iam_group_policy_attachment" "mfa_election" {
  for_each = var.elections

  group      = aws_iam_group.election[each.key].name
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

data "aws_iam_policy_document" "agent" {
  # checkov:skip=CKV_AWS_356:ListAllMyBuckets, GetAccountPublicAccessBlock and the IAM audit calls are account-wide and take no resource ARN; everything else is scoped to the party's buckets and tagged keys.
  # checkov:skip=CKV_AWS_108:The agent must read the election buckets' objects to find personal data left exposed and to keep consenting contacts before the purge (scoped to the party's buckets).
  # checkov:skip=CKV_AWS_111:The writes are the documented remediations and the purge, scoped to the party's buckets and keys.
  # checkov:skip=CKV_AWS_109:PutBucketAcl/PutObjectAcl/PutBucketPublicAccessBlock are the remediations the policy allows; scoped to the party's buckets.
  statement {
    sid = "Inventory"
    actions = [
      # the account's keys and access points, read only (exposure inventory)
      "kms:ListKeys",
      "s3:GetAccessPoint",
      "s3:GetAccountPublicAccessBlock",
      "s3:ListAccessPoints",
      "s3:ListAllMyBuckets",
      # the remediation restoring the account-level block (account-wide action)
      "s3:PutAccountPublicAccessBlock",
    ]
    resources = ["*"]
  }

  statement {
    sid = "ReadBucketSettings"
    actions = [
      "s3:GetBucketAcl",
      "s3:GetBucketLocation",
      "s3:GetBucketLogging",
      "s3:GetBucketOwnershipControls",
      "s3:GetBucketPolicy",
      "s3:GetBucketPublicAccessBlock",
      "s3:GetBucketTagging",
      "s3:GetBucketVersioning",
      "s3:GetEncryptionConfiguration",
      "s3:GetLifecycleConfiguration",
      "s3:ListBucket",
      "s3:ListBucketVersions",
    ]
    resources = [local.bucket_arns]
  }

  dynamic "statement" {
    for_each = length(var.elections) > 0 ? [1] : []

    content {
      sid = "RemediateElectionBucketExposure"
      actions = [
        "s3:DeleteBucketPolicy",
        "s3:PutBucketAcl",
        "s3:PutBucketPolicy",
        "s3:PutBucketPublicAccessBlock",
      ]
      resources = local.election_bucket_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.elections) > 0 ? [1] : []

    content {
      sid = "ScanAndPurgeElectionObjects"
      actions = [
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:GetObject",
        "s3:GetObjectAcl",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:PutObjectAcl",
      ]
      resources = [for b in local.election_bucket_arns : "${b}/*"]
    }
  }

  # A publicly exposed bucket's access logs are read to count outside reads
  # (exposure/accesslog.py LOG_PERMISSIONS); reading only, see the Deny below.
  statement {
    sid       = "ReadAccessLogs"
    actions   = ["s3:GetObject"]
    resources = ["arn:${local.partition}:s3:::${var.org_slug}-access-logs*/*"]
  }

  # Defence in depth (aws-readiness F12): whatever a later change allows, the
  # access logs and the Terraform state are never changed or erased, and the
  # state is never read. Settings stay readable (the exposure checks read every
  # bucket's), and so may the access logs' objects (counting outside reads).
  statement {
    sid    = "DenyLogsAndState"
    effect = "Deny"
    actions = [
      "s3:DeleteBucket*",
      "s3:DeleteObject*",
      "s3:PutBucket*",
      "s3:PutEncryptionConfiguration",
      "s3:PutLifecycleConfiguration",
      "s3:PutObject*",
    ]
    resources = [
      "arn:${local.partition}:s3:::${var.org_slug}-access-logs*",
      "arn:${local.partition}:s3:::*-tfstate",
      "arn:${local.partition}:s3:::*-tfstate/*",
    ]
  }

  statement {
    sid       = "DenyReadingState"
    effect    = "Deny"
    actions   = ["s3:GetObject*"]
    resources = ["arn:${local.partition}:s3:::*-tfstate/*"]
  }

  statement {
    sid       = "ReadPartyKeys"
    actions   = ["kms:DescribeKey", "kms:GetKeyRotationStatus"]
    resources = ["arn:${local.partition}:kms:*:${local.account_id}:key/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/isoloir:org"
      values   = [var.org_slug]
    }
  }

  dynamic "statement" {
    for_each = length(var.elections) > 0 ? [1] : []

    content {
      sid = "UseAndShredElectionKeys"
      # GenerateDataKey: a person's erasure rewrites the current version (isoloir.dpo.erase)
      actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:ScheduleKeyDeletion"]
      resources = local.election_key_arns
    }
  }

  statement {
    sid = "AuditIdentities"
    actions = [
      "iam:GetAccountPasswordPolicy",
      "iam:GetLoginProfile",
      "iam:ListAccessKeys",
      "iam:ListMFADevices",
      "iam:ListUsers",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "agent" {
  name   = "${local.prefix}-agent"
  role   = aws_iam_role.agent.id
  policy = data.aws_iam_policy_document.agent.json
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
