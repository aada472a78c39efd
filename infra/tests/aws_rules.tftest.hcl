# What AWS enforces and the emulator does not, checked on the modules with a
# mocked provider (no AWS, no emulator): lifecycle rules that spare permanent
# datasets, off-boarding in one deploy, tag values within 256 characters.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:role/deployer" }
  }

  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }

  mock_data "aws_region" {
    defaults = { name = "eu-west-3" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

variables {
  election_id       = "ville-2027"
  region            = "eu-west-3"
  bucket_name       = "parti-test-ville-2027"
  retention_date    = "2027-05-21"
  log_bucket_name   = "parti-test-access-logs"
  member_arns       = ["arn:aws:iam::123456789012:user/isoloir/bob"]
  agent_role_arn    = "arn:aws:iam::123456789012:role/isoloir/isoloir-parti-test-agent"
  account_id        = "123456789012"
  campaign_prefixes = ["porte-a-porte/", "prospects/"]
}

run "lifecycle_expires_campaign_prefixes_only_after_the_agent" {
  command = plan

  module {
    source = "./modules/election_storage"
  }

  assert {
    condition = toset([for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.id]) == toset([
      "retention:porte-a-porte/", "retention:prospects/", "noncurrent-versions", "housekeeping"
    ])
    error_message = "one retention rule per campaign prefix, plus noncurrent-versions and housekeeping"
  }

  assert {
    condition = alltrue([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule :
      r.filter[0].prefix != "" && r.expiration[0].date == "2027-06-04T00:00:00Z" && r.status == "Enabled"
      if startswith(r.id, "retention:")
    ])
    error_message = "retention rules must name their prefix and expire 14 days after the retention date"
  }

  assert {
    condition = alltrue([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule :
      r.expiration[0].expired_object_delete_marker == true && length(r.noncurrent_version_expiration) == 0
      if r.id == "housekeeping"
    ])
    error_message = "the whole-bucket rule only removes lone delete markers (no noncurrent expiry)"
  }

  assert {
    condition = alltrue([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule :
      r.status == "Enabled" && length(r.expiration) == 0 && r.noncurrent_version_expiration[0].noncurrent_days == 7
      if r.id == "noncurrent-versions"
    ])
    error_message = "the whole-bucket noncurrent rule expires old versions after 7 days and never a current version"
  }
}

run "legal_hold_disables_the_expiry" {
  command = plan

  module {
    source = "./modules/election_storage"
  }

  variables {
    legal_hold = true
  }

  assert {
    condition     = alltrue([for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.status == "Disabled" if r.id != "housekeeping"])
    error_message = "a legal hold disables every expiry rule"
  }

  assert {
    condition     = strcontains(aws_kms_key.this.policy, "DenyAgentShreddingUnderLegalHold") && !strcontains(aws_kms_key.this.policy, "DateLessThan")
    error_message = "under a legal hold the agents' key shredding is denied at any date"
  }
}

run "an_empty_campaign_prefix_is_refused" {
  command = plan

  module {
    source = "./modules/election_storage"
  }

  variables {
    campaign_prefixes = [""]
  }

  expect_failures = [var.campaign_prefixes]
}

run "people_are_removed_in_one_deploy" {
  command = plan

  module {
    source = "./modules/account_baseline"
  }

  variables {
    org_slug = "parti-test"
    password_policy = {
      minimum_length    = 14
      require_lowercase = true
      require_uppercase = true
      require_numbers   = true
      require_symbols   = false
      reuse_prevention  = 24
      max_age_days      = 0
    }
    people         = ["alice", "bob"]
    administrators = ["alice"]
  }

  assert {
    condition     = alltrue([for u in aws_iam_user.person : u.force_destroy])
    error_message = "IAM refuses DeleteUser while a login profile, access key or MFA device exists: force_destroy must be on"
  }
}

run "host_tags_stay_within_256_characters" {
  command = plan

  module {
    source = "./modules/file_share_host"
  }

  variables {
    name             = "parti-test-eu-west-3"
    image_id         = "ami-0123456789abcdef0"
    subnet_id        = "subnet-0123456789abcdef0"
    vpc_id           = "vpc-0123456789abcdef0"
    admin_networks   = ["10.20.0.0/24"]
    instance_profile = "isoloir-parti-test-agent"
    # 12 elections with 40-character ids: 491 characters once joined
    elections = [for i in range(12) : format("municipale-partielle-ville-numero-%06d", i)]
  }

  assert {
    condition     = alltrue([for k, v in aws_instance.this.tags : length(v) <= 256])
    error_message = "EC2 refuses a tag value longer than 256 characters"
  }

  assert {
    condition     = aws_instance.this.tags["isoloir:election-count"] == "12"
    error_message = "the host carries the number of elections it serves"
  }
}
