# The identity policies of the agents' role and of the people, as JSON, with no
# provider and no resource: their size does not depend on the number of
# elections or people (aws-readiness N2, N3). Which election a principal may
# touch is decided by the election's bucket and key policies
# (modules/election_policies), which name its members; here only the party's
# namespace is granted: buckets named <slug>-*, keys tagged isoloir:org = <slug>
# and isoloir:election. Rendered without AWS, so tests measure them
# (tests/unit/test_access_quotas.py). See docs/infra.md, "The access model".

locals {
  p       = var.partition
  buckets = "arn:${local.p}:s3:::${var.org_slug}-*"
  keys    = "arn:${local.p}:kms:*:${var.account_id}:key/*"

  # The access-log buckets and the Terraform state share the party's prefix (or
  # may): never changed or erased, the state never read (aws-readiness F12).
  logs_and_state = [
    "arn:${local.p}:s3:::${var.org_slug}-access-logs*",
    "arn:${local.p}:s3:::*-tfstate",
    "arn:${local.p}:s3:::*-tfstate/*",
  ]

  # An election's key: the party's tag and an election tag (the hosts' volume
  # keys carry the first only). KMS authorises these calls on aws:ResourceTag
  # (KMS Developer Guide, "ABAC for AWS KMS").
  election_key_tags = {
    StringEquals = { "aws:ResourceTag/isoloir:org" = var.org_slug }
    Null         = { "aws:ResourceTag/isoloir:election" = "false" }
  }

  agent = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "Inventory"
        Effect = "Allow"
        Action = [
          # the account's keys and access points, read only (exposure inventory)
          "kms:ListKeys",
          "s3:GetAccessPoint",
          "s3:GetAccountPublicAccessBlock",
          "s3:ListAccessPoints",
          "s3:ListAllMyBuckets",
          # the remediation restoring the account-level block (account-wide action)
          "s3:PutAccountPublicAccessBlock",
        ]
        Resource = "*"
      },
      {
        Sid    = "ReadBucketSettings"
        Effect = "Allow"
        Action = [
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
        Resource = local.buckets
      },
      {
        # The access-log buckets are excepted by DenyLogsAndState; each election
        # bucket's policy denies its policy's change to the agents
        # (DenyAgentPolicyChange), so the remediation keeps the block and ACLs.
        Sid    = "RemediateElectionBucketExposure"
        Effect = "Allow"
        Action = [
          "s3:DeleteBucketPolicy",
          "s3:PutBucketAcl",
          "s3:PutBucketPolicy",
          "s3:PutBucketPublicAccessBlock",
        ]
        Resource = local.buckets
      },
      {
        # Deleting is dated by each election's bucket policy: never before its
        # retention date, never under a legal hold (DenyAgentDeletionBeforeRetention).
        Sid    = "ScanAndPurgeElectionObjects"
        Effect = "Allow"
        Action = [
          "s3:DeleteObject",
          "s3:DeleteObjectVersion",
          "s3:GetObject",
          "s3:GetObjectAcl",
          "s3:GetObjectVersion",
          "s3:PutObject",
          "s3:PutObjectAcl",
        ]
        Resource = "${local.buckets}/*"
      },
      {
        # A publicly exposed bucket's access logs are read to count outside
        # reads (exposure/accesslog.py LOG_PERMISSIONS); reading only.
        Sid      = "ReadAccessLogs"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "arn:${local.p}:s3:::${var.org_slug}-access-logs*/*"
      },
      {
        Sid    = "DenyLogsAndState"
        Effect = "Deny"
        Action = [
          "s3:DeleteBucket*",
          "s3:DeleteObject*",
          "s3:PutBucket*",
          "s3:PutEncryptionConfiguration",
          "s3:PutLifecycleConfiguration",
          "s3:PutObject*",
        ]
        Resource = local.logs_and_state
      },
      {
        Sid      = "DenyReadingState"
        Effect   = "Deny"
        Action   = ["s3:GetObject*"]
        Resource = "arn:${local.p}:s3:::*-tfstate/*"
      },
      {
        Sid       = "ReadPartyKeys"
        Effect    = "Allow"
        Action    = ["kms:DescribeKey", "kms:GetKeyRotationStatus"]
        Resource  = local.keys
        Condition = { StringEquals = { "aws:ResourceTag/isoloir:org" = var.org_slug } }
      },
      {
        # Shredding is dated by each election's key policy
        # (DenyAgentShreddingBeforeRetention).
        Sid = "UseAndShredElectionKeys"
        # GenerateDataKey: a person's erasure rewrites the current version (isoloir.dpo.erase)
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey", "kms:ScheduleKeyDeletion"]
        Resource  = local.keys
        Condition = local.election_key_tags
      },
      {
        Sid    = "AuditIdentities"
        Effect = "Allow"
        Action = [
          # the credential report (who has a console password, MFA, keys, and
          # when each password was last set) and the virtual MFA devices: one
          # read each for the whole account; per user only what they cannot say
          # (isoloir.exposure.inventory_identity; account-wide, read only)
          "iam:GenerateCredentialReport",
          "iam:GetAccountPasswordPolicy",
          "iam:GetCredentialReport",
          "iam:GetLoginProfile",
          "iam:ListAccessKeys",
          "iam:ListMFADevices",
          "iam:ListUsers",
          "iam:ListVirtualMFADevices",
        ]
        Resource = "*"
      },
    ]
  }

  # Attached to the people group (every person): the party's election buckets
  # and keys. Each election's bucket policy denies its objects and listing, and
  # its key policy the key's use, to anyone but its members and the agents.
  people_data = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListElectionBuckets"
        Effect   = "Allow"
        Action   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketVersions"]
        Resource = local.buckets
      },
      {
        Sid      = "UseElectionObjects"
        Effect   = "Allow"
        Action   = ["s3:DeleteObject", "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
        Resource = "${local.buckets}/*"
      },
      {
        Sid       = "UseElectionKeys"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
        Resource  = local.keys
        Condition = local.election_key_tags
      },
      {
        Sid      = "DenyLogsAndState"
        Effect   = "Deny"
        Action   = ["s3:*"]
        Resource = concat(local.logs_and_state, ["arn:${local.p}:s3:::${var.org_slug}-access-logs*/*"])
      },
    ]
  }

  user_arn = "arn:${local.p}:iam::${var.account_id}:user/isoloir"

  mfa_required = {
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ViewAccountPasswordRules"
        Effect   = "Allow"
        Action   = ["iam:GetAccountPasswordPolicy", "iam:ListVirtualMFADevices"]
        Resource = "*"
      },
      {
        Sid      = "ManageOwnPasswordAndMfa"
        Effect   = "Allow"
        Action   = ["iam:ChangePassword", "iam:GetUser", "iam:DeactivateMFADevice", "iam:EnableMFADevice", "iam:ListMFADevices", "iam:ResyncMFADevice"]
        Resource = "${local.user_arn}/$${aws:username}"
      },
      {
        Sid      = "CreateOwnVirtualMfa"
        Effect   = "Allow"
        Action   = ["iam:CreateVirtualMFADevice"]
        Resource = "arn:${local.p}:iam::${var.account_id}:mfa/*"
      },
      {
        Sid    = "DenyAllButMfaSelfServiceWithoutMfa"
        Effect = "Deny"
        NotAction = [
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
        Resource  = "*"
        Condition = { BoolIfExists = { "aws:MultiFactorAuthPresent" = "false" } }
      },
    ]
  }
}
