# Everything Isoloir keeps in one region: the region's access-log bucket, the
# storage of each election held there, and the file-share host serving them.

data "aws_partition" "current" {}

locals {
  log_bucket     = var.region == var.default_region ? var.log_bucket_name : "${var.log_bucket_name}-${var.region}"
  log_bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${local.log_bucket}"
  # The split layout (infra/roots/region) keeps the elections' storage in other
  # roots and names the host's elections here; the single root passes none.
  host_elections = var.host_elections != null ? var.host_elections : keys(var.elections)
  host_needed    = var.create_host && length(local.host_elections) > 0
}

# ---------------------------------------------------------------- log bucket

resource "aws_s3_bucket" "logs" {
  # checkov:skip=CKV_AWS_18:This is the access-log target; logging it into itself would loop.
  # checkov:skip=CKV_AWS_144:Cross-region replication would move logs naming voters' files out of the region.
  # checkov:skip=CKV2_AWS_62:Event notifications are not needed for access logs.
  # checkov:skip=CKV_AWS_145:S3 server access logging only delivers to buckets encrypted with SSE-S3, not SSE-KMS.
  bucket        = local.log_bucket
  force_destroy = var.log_bucket_force_destroy
  tags          = merge(var.tags, { "isoloir:purpose" = "access-logs" })
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket                                 = aws_s3_bucket.logs.id
  transition_default_minimum_object_size = "all_storage_classes_128K"

  rule {
    id     = "expire-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.logs]
}

data "aws_iam_policy_document" "logs" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.log_bucket_arn, "${local.log_bucket_arn}/*"]

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

  statement {
    sid       = "S3ServerAccessLogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${local.log_bucket_arn}/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }

    # Confused-deputy protection: only the party's own buckets' logs (S3 User
    # Guide, "Enabling Amazon S3 server access logging", bucket policy example).
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:s3:::${var.org_slug}-*"]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket     = aws_s3_bucket.logs.id
  policy     = data.aws_iam_policy_document.logs.json
  depends_on = [aws_s3_bucket_public_access_block.logs]
}

# ---------------------------------------------------------------- elections

module "election" {
  source   = "../election_storage"
  for_each = var.elections

  election_id              = each.key
  region                   = var.region
  bucket_name              = each.value.bucket_name
  retention_date           = each.value.retention_date
  legal_hold               = each.value.legal_hold
  kms_deletion_window_days = var.kms_deletion_window_days
  # Through the policy resource: logging is accepted only once the log bucket lets S3 write.
  log_bucket_name         = aws_s3_bucket_policy.logs.bucket
  member_arns             = each.value.member_arns
  agent_role_arn          = var.agent_role_arn
  admin_principal_arns    = var.admin_principal_arns
  campaign_prefixes       = each.value.campaign_prefixes
  lifecycle_backstop_days = var.lifecycle_backstop_days
  account_id              = var.account_id
  tags                    = var.tags
}

# ---------------------------------------------------------------- host

data "aws_vpc" "default" {
  count   = local.host_needed && var.subnet_id == null ? 1 : 0
  default = true
}

data "aws_subnets" "default" {
  count = local.host_needed && var.subnet_id == null ? 1 : 0

  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default[0].id]
  }
}

data "aws_subnet" "host" {
  count = local.host_needed ? 1 : 0
  id    = var.subnet_id != null ? var.subnet_id : sort(data.aws_subnets.default[0].ids)[0]

  lifecycle {
    postcondition {
      condition     = !self.map_public_ip_on_launch
      error_message = "The file-share host's subnet in ${var.region} gives instances a public IP on launch (default VPC subnets do): give a private subnet in subnet_ids."
    }
  }
}

module "host" {
  source = "../file_share_host"
  count  = local.host_needed ? 1 : 0

  name                     = "${var.org_slug}-shares-${var.region}"
  image_id                 = var.host_image_id
  instance_type            = var.host_instance_type
  subnet_id                = data.aws_subnet.host[0].id
  vpc_id                   = data.aws_subnet.host[0].vpc_id
  admin_networks           = var.admin_networks
  mail_submission          = var.mail_submission
  smtp_egress_ports        = var.smtp_egress_ports
  deploy_public_key        = var.deploy_public_key
  instance_profile         = var.instance_profile
  detailed_monitoring      = var.host_detailed_monitoring
  kms_deletion_window_days = var.kms_deletion_window_days
  account_id               = var.account_id
  elections                = local.host_elections
  tags                     = var.tags
}
