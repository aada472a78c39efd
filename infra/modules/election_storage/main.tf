# One election's storage: its own KMS key and a private, encrypted, versioned,
# logged bucket whose data expires at the retention date.

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  bucket_arn = "arn:${local.partition}:s3:::${var.bucket_name}"
  tags = merge(var.tags, {
    "isoloir:election"      = var.election_id
    "isoloir:retention-due" = var.retention_date
    "isoloir:legal-hold"    = tostring(var.legal_hold)
  })
  # Midnight UTC, lifecycle_backstop_days after the retention date (S3 expires
  # on a date at 00:00 UTC: LifecycleExpiration.Date, S3 API reference).
  backstop_date = timeadd("${var.retention_date}T00:00:00Z", "${var.lifecycle_backstop_days * 24}h")
  # Data-plane actions: only the election's members and the agent may use them.
  # Listing the bucket (s3:ListBucket, which also authorises HeadBucket) is kept
  # apart: the admin principals need it for Terraform's refresh (N10).
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
}

# ---------------------------------------------------------------- KMS key

data "aws_iam_policy_document" "key" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; access is delegated to the account's IAM, where the election group and agent policies scope it.
  # checkov:skip=CKV_AWS_111:Same: "*" in a key policy is the key itself; writes are granted by scoped IAM policies.
  # checkov:skip=CKV_AWS_356:Same: a key policy cannot name the key's own ARN before it exists; "*" is the key itself.
  statement {
    sid       = "AccountIamDelegation"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${var.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "Isoloir election ${var.election_id}: encrypts its bucket; scheduled for deletion after the purge (crypto-shredding)"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/isoloir/${var.election_id}"
  target_key_id = aws_kms_key.this.key_id
}

# ---------------------------------------------------------------- bucket

resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV_AWS_144:Cross-region replication would copy voters' data to a second region and a second retention clock; the data stays in one EU region by design.
  # checkov:skip=CKV2_AWS_62:Event notifications are not needed: the agents scan on a schedule.
  # checkov:skip=CKV_AWS_18:False positive: access logging is set by aws_s3_bucket_logging.this below.
  bucket = var.bucket_name
  tags   = local.tags

  lifecycle {
    precondition {
      condition     = data.aws_region.current.name == var.region
      error_message = "Election ${var.election_id} must be stored in ${var.region}, but this module was given a provider for ${data.aws_region.current.name}."
    }
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
  }
}

resource "aws_s3_bucket_logging" "this" {
  bucket        = aws_s3_bucket.this.id
  target_bucket = var.log_bucket_name
  target_prefix = "s3/${var.bucket_name}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  # Sent explicitly: the provider otherwise waits for S3 to echo its default
  # back (see docs/infra.md, "Lifecycle and the emulator").
  transition_default_minimum_object_size = "all_storage_classes_128K"

  # One expiry rule per CAMPAIGN dataset prefix, never the whole bucket: the
  # permanent datasets (the party's consenting contacts) share the bucket. It is
  # a backstop, dated lifecycle_backstop_days after the retention date, so the
  # retention agent (which extracts consents and opt-outs first, then deletes
  # every version and certifies it) is always the first deleter. Disabled under
  # a legal hold. See docs/infra.md, "Lifecycle rules: a backstop".
  dynamic "rule" {
    for_each = toset(var.campaign_prefixes)

    content {
      id     = "retention:${rule.value}"
      status = var.legal_hold ? "Disabled" : "Enabled"

      filter {
        prefix = rule.value
      }

      expiration {
        date = local.backstop_date
      }

      noncurrent_version_expiration {
        noncurrent_days = var.noncurrent_version_days
      }
    }
  }

  # Deletes no data, so it stays on under a legal hold.
  rule {
    id     = "housekeeping"
    status = "Enabled"

    filter {}

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "deny_insecure_transport" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "deny_other_encryption" {
  statement {
    sid       = "DenyPutsNotSseKms"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }

    # Only when the header is sent: a put without it gets the default, the election's key.
    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyPutsWithAnotherKey"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      # S3 accepts the key's ARN, its id, its alias and the alias's ARN in the header.
      values = [
        aws_kms_key.this.arn,
        aws_kms_key.this.key_id,
        aws_kms_alias.this.name,
        # built here: the provider derives alias ARNs from its account id, which
        # opt-in regions' aliases do not look up (infra/providers.tf)
        "arn:${local.partition}:kms:${var.region}:${var.account_id}:${aws_kms_alias.this.name}",
      ]
    }

    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "deny_other_principals" {
  # Objects: the election's members and the agent only. The deploying and
  # break-glass principals are not excepted: they administer the bucket, they
  # never read, write or delete its files.
  statement {
    sid       = "DenyDataToAnyoneButElectionAndAgent"
    effect    = "Deny"
    actions   = local.object_actions
    resources = [local.bucket_arn, "${local.bucket_arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotLike"
      variable = "aws:PrincipalArn"
      values   = sort(distinct(var.data_principal_arns))
    }
  }

  # Listing (and HeadBucket, authorised as s3:ListBucket): also the admin
  # principals, whose refresh starts with HeadBucket.
  statement {
    sid       = "DenyListingToAnyoneButElectionAgentAndAdmins"
    effect    = "Deny"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotLike"
      variable = "aws:PrincipalArn"
      values   = sort(distinct(concat(var.data_principal_arns, var.admin_principal_arns)))
    }
  }
}

data "aws_iam_policy_document" "combined" {
  source_policy_documents = [
    data.aws_iam_policy_document.deny_insecure_transport.json,
    data.aws_iam_policy_document.deny_other_encryption.json,
    data.aws_iam_policy_document.deny_other_principals.json,
  ]
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.combined.json

  # The public-access block must be in place first, whatever the policy says.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
