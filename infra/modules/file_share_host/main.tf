# A file-share host: private, IMDSv2 only, encrypted volumes, reachable on SSH
# and SMB from the admin networks only, running the agents under their role.

data "aws_partition" "current" {}

data "aws_iam_policy_document" "volume_key" {
  # checkov:skip=CKV_AWS_109:A key policy's Resource "*" means this key only; use is delegated to the account's IAM.
  # checkov:skip=CKV_AWS_111:Same: "*" in a key policy is the key itself.
  # checkov:skip=CKV_AWS_356:Same: a key policy cannot name its own key's ARN.
  statement {
    sid       = "AccountIamDelegation"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${var.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "volumes" {
  description             = "Isoloir host ${var.name}: encrypts its root and data volumes"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.volume_key.json
  tags                    = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.name}-shares"
  description = "Isoloir file-share host: SSH, SMB and mail submission from the admin networks only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.admin_networks)

  security_group_id = aws_security_group.this.id
  description       = "SSH (key + TOTP) from an admin network"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "smb" {
  for_each = toset(var.admin_networks)

  security_group_id = aws_security_group.this.id
  description       = "SMB3 (encrypted) from an admin network"
  ip_protocol       = "tcp"
  from_port         = 445
  to_port           = 445
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each = toset(var.egress_cidrs)

  security_group_id = aws_security_group.this.id
  description       = "HTTPS out: AWS APIs, security updates, alert webhooks"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "mail_submission" {
  # The mail guard's relay: staff submit campaign mail on 587 (STARTTLS + login)
  # from the admin networks only, never from the internet (docs/mailguard.md).
  for_each = var.mail_submission ? toset(var.admin_networks) : toset([])

  security_group_id = aws_security_group.this.id
  description       = "SMTP submission to the mail guard from an admin network"
  ip_protocol       = "tcp"
  from_port         = 587
  to_port           = 587
  cidr_ipv4         = each.value
}

locals {
  # SMTP out: the alerts' server and the mail guard's upstream (its port, 587 or 25).
  smtp_egress = {
    for pair in setproduct(sort(distinct([for p in var.smtp_egress_ports : tostring(p)])), var.egress_cidrs) :
    "${pair[0]} ${pair[1]}" => { port = tonumber(pair[0]), cidr = pair[1] }
  }
}

resource "aws_vpc_security_group_egress_rule" "smtp" {
  for_each = local.smtp_egress

  security_group_id = aws_security_group.this.id
  description       = "SMTP out on ${each.value.port}: alert e-mails and the mail guard's upstream"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

resource "aws_instance" "this" {
  ami                         = var.image_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = [aws_security_group.this.id]
  associate_public_ip_address = var.associate_public_ip
  iam_instance_profile        = var.instance_profile
  monitoring                  = var.detailed_monitoring
  ebs_optimized               = true
  user_data                   = local.cloud_config

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    encrypted   = true
    kms_key_id  = aws_kms_key.volumes.arn
    volume_type = "gp3"
    volume_size = 16
  }

  tags = merge(var.tags, {
    Name = var.name
    # A count, not the list: a tag value holds at most 256 characters and a
    # resource at most 50 tags; the list is in the root's file_share_hosts output.
    "isoloir:election-count" = tostring(length(var.elections))
  })

  lifecycle {
    # The elections served change over time; the host is not replaced for it.
    # cloud-init runs once: a new deploy key is installed by Ansible, not by a
    # new boot (changing user_data would stop and start the host).
    ignore_changes = [ami, user_data]
  }
}

# The data volume holding the shares: its own resource (not an inline
# ebs_block_device) so that growing it is an in-place ModifyVolume, never a new
# host. Ansible finds it by its EBS serial (the volume id, via the inventory's
# isoloir_data_volume_id), never by the device name below, which Nitro hosts
# expose as an NVMe device (docs/hosts.md).
resource "aws_ebs_volume" "data" {
  # checkov:skip=CKV2_AWS_9:No AWS Backup copy of personal data: backups the retention agent does not purge would outlive the election's due date.
  availability_zone = aws_instance.this.availability_zone
  encrypted         = true
  kms_key_id        = aws_kms_key.volumes.arn
  type              = "gp3"
  size              = var.data_volume_size_gb
  tags              = merge(var.tags, { Name = "${var.name}-data" })
}

resource "aws_volume_attachment" "data" {
  device_name = "/dev/xvdf"
  volume_id   = aws_ebs_volume.data.id
  instance_id = aws_instance.this.id
}

locals {
  # The account Ansible uses, made at first boot (docs/hosts.md): key only, no
  # password, sudo without a password (the hardening role then limits where it
  # may log in from).
  cloud_config = var.deploy_public_key == "" ? null : join("\n", ["#cloud-config", yamlencode({
    users = [
      "default",
      {
        name                = "isoloir-deploy"
        gecos               = "Isoloir deploy (Ansible)"
        shell               = "/bin/bash"
        lock_passwd         = true
        sudo                = "ALL=(ALL) NOPASSWD:ALL"
        ssh_authorized_keys = [trimspace(var.deploy_public_key)]
      },
    ]
  })])
}
