# The file-share host's data volume (issue 11 item 8): its own EBS volume,
# encrypted with the host's volume key, attached to the host, and a size change
# modifies it in place instead of replacing the host. Mocked provider only.

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

  mock_resource "aws_ebs_volume" {
    defaults = { id = "vol-0123456789abcdef0" }
  }
}

variables {
  name             = "parti-test-eu-west-3"
  image_id         = "ami-0123456789abcdef0"
  subnet_id        = "subnet-0123456789abcdef0"
  vpc_id           = "vpc-0123456789abcdef0"
  admin_networks   = ["10.20.0.0/24"]
  instance_profile = "isoloir-parti-test-agent"
  account_id       = "123456789012"
  elections        = ["ville-2027"]
}

run "data_volume_is_its_own_encrypted_ebs_volume" {
  module {
    source = "./modules/file_share_host"
  }

  assert {
    condition     = aws_ebs_volume.data.encrypted && aws_ebs_volume.data.kms_key_id == aws_kms_key.volumes.arn
    error_message = "the data volume is encrypted with the host's volume key"
  }

  assert {
    condition     = aws_ebs_volume.data.availability_zone == aws_instance.this.availability_zone
    error_message = "the data volume lives in the host's availability zone"
  }

  assert {
    condition     = aws_volume_attachment.data.volume_id == aws_ebs_volume.data.id && aws_volume_attachment.data.instance_id == aws_instance.this.id
    error_message = "the data volume is attached to the host"
  }

  assert {
    condition     = length(aws_instance.this.ebs_block_device) == 0
    error_message = "no inline ebs_block_device: a size change must not replace the host"
  }

  assert {
    condition     = output.data_volume_id == "vol-0123456789abcdef0"
    error_message = "the module outputs the data volume id (the inventory's isoloir_data_volume_id)"
  }
}

run "growing_the_data_volume_keeps_the_host" {
  command = plan

  module {
    source = "./modules/file_share_host"
  }

  variables {
    data_volume_size_gb = 80
  }

  assert {
    condition     = aws_ebs_volume.data.size == 80 && aws_instance.this.id == run.data_volume_is_its_own_encrypted_ebs_volume.instance_id
    error_message = "a larger data volume is the same host with a larger volume"
  }
}
