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

provider "aws" {
  alias                       = "eu_south_1"
  region                      = "eu-south-1"
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
  alias                       = "eu_south_2"
  region                      = "eu-south-2"
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
