# One election's resource policies, as JSON, with no provider and no resource:
# the bucket policy and the key policy. They carry everything that is per
# election (who may use the data, when the agents may destroy it), so the
# identity policies stay the same size for any number of elections
# (modules/identity_policies). Members are listed once per policy; the sizes at
# scale are measured by tests/unit/test_access_quotas.py against S3's 20 KB and
# KMS's 32 KB. See docs/infra.md, "The access model".

locals {
  bucket_arn = var.bucket_arn
  objects    = "${var.bucket_arn}/*"
  agent      = [var.agent_role_arn]
  members    = sort(distinct(var.member_arns))
  admins     = sort(distinct(var.admin_principal_arns))
  # Midnight UTC of the retention date, as aws:CurrentTime compares it (ISO 8601).
  due = "${var.retention_date}T00:00:00Z"

  # Data-plane actions: only the election's members and the agent may use them.
  object_actions = [
    "s3:AbortMultipartUpload",
    "s3:DeleteObject*",
    "s3:GetObject*",
    "s3:ListBucketMultipartUploads",
    "s3:ListBucketVersions",
    "s3:ListMultipartUploadParts",
    "s3:PutObject*",
    "s3:RestoreObject",
  ]

  # Before the retention date (always, under a legal hold): the agents' role only.
  agent_before_due = merge(
    { ArnLike = { "aws:PrincipalArn" = local.agent } },
    var.legal_hold ? {} : { DateLessThan = { "aws:CurrentTime" = local.due } },
  )

  bucket = {
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid       = "DenyInsecureTransport"
          Effect    = "Deny"
          Principal = { AWS = "*" }
          Action    = "s3:*"
          Resource  = [local.bucket_arn, local.objects]
          Condition = { Bool = { "aws:SecureTransport" = "false" } }
        },
        {
          Sid       = "DenyPutsNotSseKms"
          Effect    = "Deny"
          Principal = { AWS = "*" }
          Action    = "s3:PutObject"
          Resource  = local.objects
          Condition = {
            StringNotEquals = { "s3:x-amz-server-side-encryption" = "aws:kms" }
            # Only when the header is sent: a put without it gets the default, the election's key.
            Null = { "s3:x-amz-server-side-encryption" = "false" }
          }
        },
        {
          Sid       = "DenyPutsWithAnotherKey"
          Effect    = "Deny"
          Principal = { AWS = "*" }
          Action    = "s3:PutObject"
          Resource  = local.objects
          Condition = {
            # S3 accepts the key's ARN, its id, its alias and the alias's ARN in the header.
            StringNotEquals = {
              "s3:x-amz-server-side-encryption-aws-kms-key-id" = [var.kms_key_arn, var.kms_key_id, var.kms_alias_name, var.kms_alias_arn]
            }
            Null = { "s3:x-amz-server-side-encryption-aws-kms-key-id" = "false" }
          }
        },
        {
          # Objects and listing (HeadBucket is authorised as s3:ListBucket):
          # members, agents and the admin principals, whose refresh starts with
          # HeadBucket; every member is named here once.
          Sid       = "DenyAnyoneButElectionAgentAndAdmins"
          Effect    = "Deny"
          Principal = { AWS = "*" }
          Action    = concat(local.object_actions, ["s3:ListBucket"])
          Resource  = [local.bucket_arn, local.objects]
          Condition = { ArnNotLike = { "aws:PrincipalArn" = concat(local.members, local.agent, local.admins) } }
        },
      ],
      length(local.admins) == 0 ? [] : [
        {
          # The admin principals administer the bucket; they never read, write
          # or delete its files (aws-readiness N10).
          Sid       = "DenyDataToAdmins"
          Effect    = "Deny"
          Principal = { AWS = "*" }
          Action    = local.object_actions
          Resource  = [local.bucket_arn, local.objects]
          Condition = { ArnLike = { "aws:PrincipalArn" = local.admins } }
        },
      ],
      [
        {
          # aws-readiness N11: whatever runs on a host, its role destroys no
          # object or version before the retention date, none under a legal hold.
          Sid       = var.legal_hold ? "DenyAgentDeletionUnderLegalHold" : "DenyAgentDeletionBeforeRetention"
          Effect    = "Deny"
          Principal = { AWS = "*" }
          Action    = ["s3:DeleteObject", "s3:DeleteObjectVersion"]
          Resource  = local.objects
          Condition = local.agent_before_due
        },
        {
          # ... nor lifts that date by rewriting or deleting this policy.
          Sid       = "DenyAgentPolicyChange"
          Effect    = "Deny"
          Principal = { AWS = "*" }
          Action    = ["s3:DeleteBucketPolicy", "s3:PutBucketPolicy"]
          Resource  = local.bucket_arn
          Condition = { ArnLike = { "aws:PrincipalArn" = local.agent } }
        },
      ],
    )
  }

  key = {
    Version = "2012-10-17"
    Statement = [
      {
        # Key management stays with the account's IAM (the deployers); a key
        # policy's "*" is the key itself.
        Sid       = "AccountIamDelegation"
        Effect    = "Allow"
        Principal = { AWS = "arn:${var.partition}:iam::${var.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        # S3 calls KMS as the requester (SSE-KMS): only the members and the
        # agents may encrypt or decrypt with this key.
        Sid       = "DenyKeyUseToAnyoneButElectionAndAgent"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
        Resource  = "*"
        Condition = { ArnNotLike = { "aws:PrincipalArn" = concat(local.members, local.agent) } }
      },
      {
        Sid       = var.legal_hold ? "DenyAgentShreddingUnderLegalHold" : "DenyAgentShreddingBeforeRetention"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "kms:ScheduleKeyDeletion"
        Resource  = "*"
        Condition = local.agent_before_due
      },
    ]
  }
}
