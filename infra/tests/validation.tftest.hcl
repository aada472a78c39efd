mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:sts::123456789012:assumed-role/deployer/session" }
  }

  mock_data "aws_iam_session_context" {
    defaults = { issuer_arn = "arn:aws:iam::123456789012:role/deployer" }
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

mock_provider "aws" {
  alias = "eu_west_3"

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
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

mock_provider "aws" {
  alias = "eu_west_1"

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }

  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }

  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

mock_provider "aws" {
  alias = "eu_central_1"

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }

  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }

  mock_data "aws_region" {
    defaults = { name = "eu-central-1" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

mock_provider "aws" {
  alias = "eu_north_1"

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }

  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }

  mock_data "aws_region" {
    defaults = { name = "eu-north-1" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

mock_provider "aws" {
  alias = "eu_south_1"

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }

  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }

  mock_data "aws_region" {
    defaults = { name = "eu-south-1" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

mock_provider "aws" {
  alias = "eu_south_2"

  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }

  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }

  mock_data "aws_region" {
    defaults = { name = "eu-south-2" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
}

# Unit-level checks of the root's validation blocks: no AWS, no emulator, the
# provider is mocked. Each run must fail on the named variable, with its message.

variables {
  org_slug        = "parti-test"
  default_region  = "eu-west-3"
  allowed_regions = ["eu-west-3", "eu-central-1"]
  password_policy = {
    minimum_length    = 14
    require_lowercase = true
    require_uppercase = true
    require_numbers   = true
    require_symbols   = false
    reuse_prevention  = 24
    max_age_days      = 0
  }
  kms_deletion_window_days = 30
  admin_networks           = ["10.20.0.0/24"]
  log_bucket_name          = "parti-test-access-logs"
  administrators           = ["alice"]
  people                   = ["alice", "bob"]
  create_hosts             = false
  elections                = {}
  deployer_principal_arns  = ["arn:aws:iam::123456789012:role/deployer"]
  break_glass_role_arns    = ["arn:aws:iam::123456789012:role/break-glass"]
}

run "election_outside_the_eu_is_refused" {
  command = plan

  variables {
    elections = {
      "ville-2027" = {
        label          = "Ville 2027"
        region         = "eu-west-2"
        bucket_name    = "parti-test-ville-2027"
        retention_date = "2027-05-21"
        legal_hold     = false
        members        = ["bob"]
      }
    }
  }

  expect_failures = [var.elections]
}

run "default_region_outside_the_eu_is_refused" {
  command = plan

  variables {
    default_region = "eu-central-2"
  }

  expect_failures = [var.default_region]
}

run "election_region_not_allowed_by_policy_is_refused" {
  command = plan

  variables {
    elections = {
      "ville-2027" = {
        label          = "Ville 2027"
        region         = "eu-north-1"
        bucket_name    = "parti-test-ville-2027"
        retention_date = "2027-05-21"
        legal_hold     = false
        members        = ["bob"]
      }
    }
  }

  expect_failures = [var.elections]
}

run "member_who_is_not_a_person_is_refused" {
  command = plan

  variables {
    elections = {
      "ville-2027" = {
        label          = "Ville 2027"
        region         = "eu-west-3"
        bucket_name    = "parti-test-ville-2027"
        retention_date = "2027-05-21"
        legal_hold     = false
        members        = ["mallory"]
      }
    }
  }

  expect_failures = [var.elections]
}

run "retention_date_must_be_a_date" {
  command = plan

  variables {
    elections = {
      "ville-2027" = {
        label          = "Ville 2027"
        region         = "eu-west-3"
        bucket_name    = "parti-test-ville-2027"
        retention_date = "P2M"
        legal_hold     = false
        members        = ["bob"]
      }
    }
  }

  expect_failures = [var.elections]
}

run "admin_network_open_to_the_internet_is_refused" {
  command = plan

  variables {
    admin_networks = ["0.0.0.0/0"]
  }

  expect_failures = [var.admin_networks]
}

run "password_shorter_than_cnil_minimum_is_refused" {
  command = plan

  variables {
    password_policy = {
      minimum_length    = 8
      require_lowercase = true
      require_uppercase = true
      require_numbers   = true
      require_symbols   = true
      reuse_prevention  = 24
      max_age_days      = 0
    }
  }

  expect_failures = [var.password_policy]
}

run "campaign_prefix_covering_a_permanent_dataset_is_refused" {
  command = plan

  variables {
    elections = {
      "ville-2027" = {
        label             = "Ville 2027"
        region            = "eu-west-3"
        bucket_name       = "parti-test-ville-2027"
        retention_date    = "2027-05-21"
        legal_hold        = false
        members           = ["bob"]
        dataset_prefixes  = ["prospects/", "prospects/benevoles/"]
        campaign_prefixes = ["prospects/"]
      }
    }
  }

  expect_failures = [var.elections]
}

run "bucket_outside_the_party_prefix_is_refused" {
  command = plan

  variables {
    elections = {
      "ville-2027" = {
        label          = "Ville 2027"
        region         = "eu-west-3"
        bucket_name    = "autre-ville-2027"
        retention_date = "2027-05-21"
        legal_hold     = false
        members        = ["bob"]
      }
    }
  }

  expect_failures = [var.elections]
}

# Issue 21: no IAM group per election, so a person may be a member of any
# number of elections (their bucket and key policies name them).
run "a_person_in_many_elections_is_accepted" {
  command = plan

  variables {
    elections = {
      for i in range(12) : format("ville-%02d", i) => {
        label          = "Ville"
        region         = "eu-west-3"
        bucket_name    = format("parti-test-ville-%02d", i)
        retention_date = "2027-05-21"
        legal_hold     = false
        members        = ["alice"]
      }
    }
  }

  assert {
    condition     = length(module.eu_west_3[0].elections) == 12
    error_message = "twelve elections of one member are planned"
  }
}

# aws-readiness N6: on AWS (no emulator endpoint) the deploying principals and a
# break-glass role must be declared in the policies.
run "no_declared_deployer_on_aws_is_refused" {
  command = plan

  variables {
    deployer_principal_arns = []
  }

  expect_failures = [var.deployer_principal_arns]
}

run "no_break_glass_role_on_aws_is_refused" {
  command = plan

  variables {
    break_glass_role_arns = []
  }

  expect_failures = [var.break_glass_role_arns]
}

run "a_wildcard_outside_identity_center_roles_is_refused" {
  command = plan

  variables {
    deployer_principal_arns = ["arn:aws:iam::123456789012:role/*"]
  }

  expect_failures = [var.deployer_principal_arns]
}

run "declared_deployers_and_an_identity_center_wildcard_are_the_admin_principals" {
  command = plan

  variables {
    deployer_principal_arns = [
      "arn:aws:iam::123456789012:role/deployer",
      "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-3/AWSReservedSSO_IsoloirDeploy_*",
    ]
  }

  assert {
    condition = local.admin_principals == tolist([
      "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-3/AWSReservedSSO_IsoloirDeploy_*",
      "arn:aws:iam::123456789012:role/break-glass",
      "arn:aws:iam::123456789012:role/deployer",
    ])
    error_message = "the admin principals are the declared ones, not whoever runs the plan"
  }
}

# aws-readiness N5/N14: on AWS the mail guard needs an upstream, and the hosts
# may connect out to its port.
run "mail_guard_on_aws_without_upstream_is_refused" {
  command = plan

  variables {
    create_hosts       = true
    mail_guard_enabled = true
  }

  expect_failures = [var.mail_upstream]
}

run "the_upstream_port_is_opened_for_egress" {
  command = plan

  variables {
    mail_guard_enabled = true
    mail_upstream      = { host = "smtp.parti-test.example", port = 25 }
    alert_smtp_port    = 465
  }

  assert {
    condition     = local.regional_common.smtp_egress_ports == tolist([25, 465]) && local.regional_common.mail_submission
    error_message = "the hosts' SMTP egress is the alerts' port and the upstream's; 587 in from the admin networks"
  }
}

run "on_the_emulator_no_declared_deployer_means_whoever_plans" {
  command = plan

  variables {
    aws_endpoint            = "https://127.0.0.1:4566"
    deployer_principal_arns = []
    break_glass_role_arns   = []
  }

  assert {
    condition     = local.admin_principals == tolist(["arn:aws:iam::123456789012:role/deployer"])
    error_message = "on the emulator the plan's own principal is the admin principal"
  }
}
