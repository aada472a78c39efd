# The file-share host's security group (aws-readiness N5/N14): the mail guard's
# submission port 587 is reachable from the admin networks only, nothing is
# open to the internet, and the host may connect out to the mail upstream's
# port (587 or 25). Mocked provider only.

mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }

  mock_resource "aws_instance" {
    defaults = { availability_zone = "eu-west-3a", id = "i-0123456789abcdef0" }
  }

  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-3:123456789012:key/00000000-0000-4000-8000-000000000000" }
  }

  mock_resource "aws_security_group" {
    defaults = { id = "sg-0123456789abcdef0" }
  }
}

variables {
  name              = "parti-test-eu-west-3"
  image_id          = "ami-0123456789abcdef0"
  subnet_id         = "subnet-0123456789abcdef0"
  vpc_id            = "vpc-0123456789abcdef0"
  admin_networks    = ["10.20.0.0/24", "192.0.2.0/28"]
  instance_profile  = "isoloir-parti-test-agent"
  account_id        = "123456789012"
  elections         = ["ville-2027"]
  mail_submission   = true
  smtp_egress_ports = [587, 25]
}

run "submission_is_open_to_the_admin_networks_only" {
  command = plan

  module {
    source = "./modules/file_share_host"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.mail_submission : r.cidr_ipv4]) == toset(["10.20.0.0/24", "192.0.2.0/28"])
    error_message = "587 must be open from each admin network"
  }

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.mail_submission : r.from_port == 587 && r.to_port == 587 && r.ip_protocol == "tcp"])
    error_message = "the submission rules must open tcp/587 and nothing else"
  }

  assert {
    condition = alltrue([
      for r in concat(
        values(aws_vpc_security_group_ingress_rule.mail_submission),
        values(aws_vpc_security_group_ingress_rule.ssh),
        values(aws_vpc_security_group_ingress_rule.smb),
      ) : contains(["10.20.0.0/24", "192.0.2.0/28"], r.cidr_ipv4) && r.cidr_ipv4 != "0.0.0.0/0"
    ])
    error_message = "every ingress rule comes from an admin network, none from 0.0.0.0/0"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_egress_rule.smtp : r.from_port]) == toset([25, 587])
    error_message = "the host must reach the upstream on 25 and the alerts' server on 587"
  }

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_egress_rule.smtp : r.from_port == r.to_port && r.ip_protocol == "tcp"])
    error_message = "each SMTP egress rule opens one tcp port"
  }
}

run "without_the_mail_guard_587_stays_closed" {
  command = plan

  module {
    source = "./modules/file_share_host"
  }

  variables {
    mail_submission   = false
    smtp_egress_ports = [587]
  }

  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.mail_submission) == 0
    error_message = "no mail guard, no 587 ingress"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_egress_rule.smtp : r.from_port]) == toset([587])
    error_message = "only the alerts' port goes out"
  }
}
