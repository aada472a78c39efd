variable "name" {
  description = "Name of the host (also used for its security group and key)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,50}[a-z0-9]$", var.name))
    error_message = "name must be a lower-case slug of 3 to 52 characters."
  }
}

variable "image_id" {
  description = "Debian 12 (bookworm) AMI id in the host's region."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.image_id))
    error_message = "image_id must be an AMI id (ami- followed by 8 to 17 hex digits)."
  }
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
  default     = "t3.small"
}

variable "subnet_id" {
  description = "Private subnet for the host."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the subnet (for the security group)."
  type        = string
}

variable "admin_networks" {
  description = "CIDR blocks allowed to reach SSH (22) and SMB (445): the policy's admin networks."
  type        = list(string)

  validation {
    condition     = length(var.admin_networks) > 0 && alltrue([for c in var.admin_networks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "admin_networks must be a non-empty list of CIDR blocks, and never 0.0.0.0/0."
  }
}

variable "mail_submission" {
  description = "Open 587 from the admin networks to the mail guard's relay on this host."
  type        = bool
  default     = false
}

variable "smtp_egress_ports" {
  description = "TCP ports the host may open SMTP connections to: the alerts' server and the mail guard's upstream (587 or 25)."
  type        = list(number)
  default     = [587]

  validation {
    condition     = alltrue([for p in var.smtp_egress_ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "smtp_egress_ports must be TCP ports."
  }
}

variable "egress_cidrs" {
  description = "Where the host may open HTTPS connections (AWS APIs, Debian security updates, alert webhooks and SMTP submission)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "associate_public_ip" {
  description = "Give the host a public IP address (off: reach it over VPN from the admin networks)."
  type        = bool
  default     = false
}

variable "detailed_monitoring" {
  description = "One-minute CloudWatch metrics for the host (off only where the API is missing, e.g. the emulator)."
  type        = bool
  default     = true
}

variable "instance_profile" {
  description = "Instance profile carrying the agents' role."
  type        = string
}

variable "data_volume_size_gb" {
  description = "Size of the encrypted data volume holding the shares (GiB)."
  type        = number
  default     = 50

  validation {
    condition     = var.data_volume_size_gb >= 1 && var.data_volume_size_gb <= 16384
    error_message = "data_volume_size_gb must be 1 to 16384."
  }
}

variable "kms_deletion_window_days" {
  description = "Deletion window of the volumes' KMS key (7 to 30 days)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be from 7 to 30."
  }
}

variable "account_id" {
  description = "The AWS account id (the volume key policy delegates to the account's IAM)."
  type        = string
}

variable "elections" {
  description = "Ids of the elections whose shares this host serves (tagged on the host)."
  type        = list(string)
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "deploy_public_key" {
  description = "OpenSSH public key of the deploy account (isoloir-deploy) made by cloud-init; empty: none."
  type        = string
  default     = ""
}
