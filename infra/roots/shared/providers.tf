# Shared by the three roots (each root's providers.tf links here): one provider,
# for the root instance's one region (`local.provider_region`, set in each root's
# main.tf). `aws_endpoint` (the emulator) switches it the way it switches every
# alias of the single root (infra/providers.tf).

locals {
  emulated = var.aws_endpoint != null
  tags = merge(var.extra_tags, {
    "isoloir:org"        = var.org_slug
    "isoloir:managed-by" = "terraform"
  })
}

provider "aws" {
  region                      = local.provider_region
  s3_use_path_style           = local.emulated
  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated

  endpoints {
    ec2       = var.aws_endpoint
    iam       = var.aws_endpoint
    kms       = var.aws_endpoint
    s3        = var.aws_endpoint
    s3control = var.aws_endpoint
    sts       = var.aws_endpoint
  }

  default_tags {
    tags = local.tags
  }
}
