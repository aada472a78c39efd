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
}

# ---------------------------------------------------------------- KMS key

# The bucket and key policies: who may use the data, and from when the agents
# may destroy it (modules/election_policies, docs/infra.md "The access model").
module "policies" {
  source = "../election_policies"

  bucket_arn     = local.bucket_arn
  kms_key_arn    = aws_kms_key.this.arn
  kms_key_id     = aws_kms_key.this.key_id
  kms_alias_name = aws_kms_alias.this.name
  # built here: the provider derives alias ARNs from its account id, which
  # opt-in regions' aliases do not look up (infra/providers.tf)
  kms_alias_arn        = "arn:${local.partition}:kms:${var.region}:${var.account_id}:${aws_kms_alias.this.name}"
  member_arns          = var.member_arns
  agent_role_arn       = var.agent_role_arn
  admin_principal_arns = var.admin_principal_arns
  retention_date       = var.retention_date
  legal_hold           = var.legal_hold
  account_id           = var.account_id
  partition            = local.partition
}

resource "aws_kms_key" "this" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; management is delegated to the account's IAM.
  # checkov:skip=CKV_AWS_111:Same: "*" in a key policy is the key itself; its use is denied to all but the members and the agents.
  # checkov:skip=CKV_AWS_356:Same: a key policy cannot name the key's own ARN before it exists; "*" is the key itself.
  description             = "Isoloir election ${var.election_id}: encrypts its bucket; scheduled for deletion after the purge (crypto-shredding)"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = module.policies.key
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

  # Old versions of every object, the permanent datasets' included, go
  # noncurrent_version_days after they stop being current; never a current
  # version. A person's erasure (isoloir person erase) rewrites the current
  # version, and before the retention date AWS refuses the agents' role the
  # deletion of the earlier ones (DenyAgentDeletionBeforeRetention): S3 removes
  # them here. Disabled under a legal hold. See docs/infra.md, "Lifecycle rules".
  rule {
    id     = "noncurrent-versions"
    status = var.legal_hold ? "Disabled" : "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
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

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = module.policies.bucket

  # The public-access block must be in place first, whatever the policy says.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
