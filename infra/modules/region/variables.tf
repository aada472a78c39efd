variable "region" {
  description = "The region of the provider this module is given (one module block per allowed EU region in the root)."
  type        = string

  validation {
    condition     = contains(["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"], var.region)
    error_message = "region must be an AWS region inside the European Union."
  }
}

variable "default_region" {
  description = "The party's default region: its log bucket carries the plain log_bucket_name, the others get a region suffix."
  type        = string
}

variable "org_slug" {
  description = "The party's slug (names of the host and the log bucket)."
  type        = string
}

variable "elections" {
  description = "The elections stored in this region."
  type = map(object({
    bucket_name       = string
    retention_date    = string
    legal_hold        = bool
    member_arns       = list(string)
    campaign_prefixes = list(string)
  }))
}

variable "agent_role_arn" {
  description = "ARN of the agents' role (named in every election's bucket and key policy)."
  type        = string
}

variable "admin_principal_arns" {
  description = "The deploying principal and break-glass roles, excepted from the election buckets' data deny."
  type        = list(string)
  default     = []
}

variable "lifecycle_backstop_days" {
  description = "Days after each election's retention date at which its campaign prefixes expire (backstop behind the retention agent)."
  type        = number
  default     = 14
}

variable "log_bucket_name" {
  description = "Base name of the account's access-log bucket."
  type        = string
}

variable "kms_deletion_window_days" {
  description = "Deletion window of the election keys (7 to 30 days)."
  type        = number
}

variable "account_id" {
  description = "The AWS account id."
  type        = string
}

variable "create_host" {
  description = "Create the file-share host of this region (false: the shares are served elsewhere, e.g. the sandbox host of the local target)."
  type        = bool
  default     = true
}

variable "host_image_id" {
  description = "Debian 12 AMI id for this region's host (required when create_host)."
  type        = string
  default     = null
}

variable "host_instance_type" {
  description = "Instance type of the host."
  type        = string
  default     = "t3.small"
}

variable "host_detailed_monitoring" {
  description = "Detailed monitoring of the host."
  type        = bool
  default     = true
}

variable "subnet_id" {
  description = "Subnet for the host; null: the first subnet of the region's default VPC."
  type        = string
  default     = null
}

variable "admin_networks" {
  description = "CIDR blocks allowed to reach SSH and SMB."
  type        = list(string)
}

variable "instance_profile" {
  description = "Instance profile of the agents' role."
  type        = string
}

variable "log_bucket_force_destroy" {
  description = "Allow destroying the log bucket while it holds logs."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Days the access logs are kept."
  type        = number
  default     = 365
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

variable "mail_submission" {
  description = "Open 587 from the admin networks to the host's mail guard."
  type        = bool
  default     = false
}

variable "smtp_egress_ports" {
  description = "SMTP ports the host may connect out to (alerts' server, mail guard upstream)."
  type        = list(number)
  default     = [587]
}

variable "host_elections" {
  description = "Ids of the elections the host serves when their storage is managed elsewhere (infra/roots/elections, with elections = {}); null: the keys of elections."
  type        = list(string)
  default     = null
}
