# Written by the driver from the rendered variables, the target's settings and
# the baseline root's outputs (docs/infra.md, the split layout).

variable "region" {
  description = "The region of this root instance."
  type        = string

  validation {
    condition     = contains(["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"], var.region)
    error_message = "region must be an AWS region inside the European Union."
  }
}

variable "default_region" {
  description = "The party's default region (its log bucket carries the plain log_bucket_name)."
  type        = string
}

variable "org_slug" {
  description = "The party's slug (lower-case), prefix of every name."
  type        = string
}

variable "log_bucket_name" {
  description = "Base name of the access-log buckets."
  type        = string
}

variable "kms_deletion_window_days" {
  description = "Deletion window of the host's volume key (7 to 30 days)."
  type        = number
  default     = 30
}

variable "account_id" {
  description = "The AWS account id (the baseline root's output)."
  type        = string
}

variable "admin_networks" {
  description = "CIDR blocks from which administrators reach SSH and SMB."
  type        = list(string)

  validation {
    condition     = length(var.admin_networks) > 0 && alltrue([for c in var.admin_networks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "admin_networks must be CIDR blocks, and never 0.0.0.0/0."
  }
}

variable "lifecycle_backstop_days" {
  description = "Passed through to the region module (used by election storage only)."
  type        = number
  default     = 14
}

variable "mail_guard_enabled" {
  description = "The campaign mail guard runs on the host (opens 587 from the admin networks)."
  type        = bool
  default     = false
}

variable "mail_upstream" {
  description = "The party's smarthost the mail guard relays to."
  type = object({
    host = string
    port = number
  })
  default = null
}

variable "alert_smtp_port" {
  description = "Port of the alerts' SMTP server; null: no e-mail alerts."
  type        = number
  default     = 587
  nullable    = true
}

variable "deploy_public_key" {
  description = "OpenSSH public key of the deploy account made by cloud-init; empty: none."
  type        = string
  default     = ""
}

variable "create_hosts" {
  description = "Create this region's file-share host."
  type        = bool
  default     = true
}

variable "host_image_id" {
  description = "Debian 12 AMI id for this region's host."
  type        = string
  default     = null
}

variable "host_detailed_monitoring" {
  description = "Detailed monitoring of the host."
  type        = bool
  default     = true
}

variable "force_destroy_logs" {
  description = "Let `destroy` delete the access-log bucket while it holds logs (local target only)."
  type        = bool
  default     = false
}

variable "subnet_id" {
  description = "Subnet of the host; null: the first subnet of the default VPC."
  type        = string
  default     = null
}

variable "instance_profile" {
  description = "Instance profile of the agents' role (the baseline root's output)."
  type        = string
}

variable "host_elections" {
  description = "Ids of the region's elections, served by its host (empty when hosts are not created)."
  type        = list(string)
  default     = []
}

variable "extra_tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "aws_endpoint" {
  description = "Endpoint of the AWS emulator for the local target (null: real AWS)."
  type        = string
  default     = null

  validation {
    condition     = var.aws_endpoint == null || can(regex("^https://127\\.[0-9]+\\.[0-9]+\\.[0-9]+:[0-9]+$", var.aws_endpoint))
    error_message = "aws_endpoint must be an https URL on the loopback range (the emulator), or null."
  }
}
