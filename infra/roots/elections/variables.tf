# Written by the driver: this batch's elections only, with their members'
# user ARNs, and the baseline and region roots' outputs (docs/infra.md).

variable "region" {
  description = "The region of this batch's elections."
  type        = string

  validation {
    condition     = contains(["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"], var.region)
    error_message = "region must be an AWS region inside the European Union."
  }
}

variable "org_slug" {
  description = "The party's slug (lower-case), prefix of every name."
  type        = string
}

variable "elections" {
  description = "This batch's elections, by id."
  type = map(object({
    bucket_name       = string
    retention_date    = string
    legal_hold        = bool
    member_arns       = list(string)
    campaign_prefixes = list(string)
  }))

  validation {
    condition     = alltrue([for id, e in var.elections : can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", e.retention_date))])
    error_message = "Every election's retention_date must be a date written YYYY-MM-DD."
  }

  validation {
    condition     = alltrue([for id, e in var.elections : startswith(e.bucket_name, "${var.org_slug}-")])
    error_message = "Every election's bucket name must start with \"<org_slug>-\"."
  }
}

variable "log_bucket_name" {
  description = "The region's access-log bucket (the region root's output)."
  type        = string
}

variable "kms_deletion_window_days" {
  description = "Days between scheduling an election key's deletion and its destruction (7 to 30)."
  type        = number
  default     = 30
}

variable "account_id" {
  description = "The AWS account id (the baseline root's output)."
  type        = string
}

variable "agent_role_arn" {
  description = "ARN of the agents' role (the baseline root's output)."
  type        = string
}

variable "admin_principal_arns" {
  description = "The deploying principals and break-glass roles (the baseline root's output)."
  type        = list(string)
}

variable "lifecycle_backstop_days" {
  description = "Days after an election's retention date at which its campaign datasets expire."
  type        = number
  default     = 14
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
