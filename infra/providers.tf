# AWS provider 5.x has no per-resource region: one alias per EU region an
# election may use, and the root gives each regional module its alias.
# `aws_endpoint` (the emulator) switches every alias to it; the modules do not
# know about it.

locals {
  emulated = var.aws_endpoint != null
}

provider "aws" {
  region                      = var.default_region
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

provider "aws" {
  alias                       = "eu_west_3"
  region                      = "eu-west-3"
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

provider "aws" {
  alias                       = "eu_west_1"
  region                      = "eu-west-1"
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

provider "aws" {
  alias                       = "eu_central_1"
  region                      = "eu-central-1"
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

provider "aws" {
  alias                       = "eu_north_1"
  region                      = "eu-north-1"
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

# eu-south-1 (Milan) and eu-south-2 (Spain) are opt-in regions: disabled until
# an administrator enables them (Account > AWS Regions). Terraform configures a
# provider alias even when its module has count = 0, and on an account that has
# not enabled the region the provider's credential check (sts:GetCallerIdentity
# there) fails every plan with InvalidClientTokenId. So these aliases skip that
# check and the account-id lookup (the modules get the account id from the
# default provider); a call in a region still disabled fails only when an
# election is actually placed there. `isoloir policy validate` warns when the
# policies allow one (docs/infra.md).
provider "aws" {
  alias                   = "eu_south_1"
  region                  = "eu-south-1"
  s3_use_path_style       = local.emulated
  skip_metadata_api_check = local.emulated
  # Opt-in region: see the note above the first opt-in alias.
  skip_credentials_validation = true
  skip_requesting_account_id  = true

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

provider "aws" {
  alias                   = "eu_south_2"
  region                  = "eu-south-2"
  s3_use_path_style       = local.emulated
  skip_metadata_api_check = local.emulated
  # Opt-in region: see the note above the first opt-in alias.
  skip_credentials_validation = true
  skip_requesting_account_id  = true

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
