variable "org_slug" {
  description = "The party's slug: every bucket Isoloir creates starts with it, every key it creates is tagged isoloir:org with it."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,28}[a-z0-9]$", var.org_slug))
    error_message = "org_slug must be a lower-case slug of 3 to 30 characters."
  }
}

variable "account_id" {
  description = "The AWS account id (key ARNs, IAM users' ARNs)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "partition" {
  description = "The AWS partition (aws for the EU regions)."
  type        = string
  default     = "aws"
}
