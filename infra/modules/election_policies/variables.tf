variable "bucket_arn" {
  description = "ARN of the election's bucket."
  type        = string
}

variable "kms_key_arn" {
  description = "ARN of the election's KMS key (puts naming another key are denied)."
  type        = string
}

variable "kms_key_id" {
  description = "Id of the election's KMS key."
  type        = string
}

variable "kms_alias_name" {
  description = "The key's alias (alias/isoloir/<id>)."
  type        = string
}

variable "kms_alias_arn" {
  description = "ARN of the key's alias."
  type        = string
}

variable "member_arns" {
  description = "IAM user ARNs of the election's members: the only people who may use its objects, listing and key."
  type        = list(string)
}

variable "agent_role_arn" {
  description = "ARN of the agents' role (with its path, as aws:PrincipalArn holds it)."
  type        = string
}

variable "admin_principal_arns" {
  description = "Deployers and break-glass roles: they may list the bucket and manage its settings, never touch its objects."
  type        = list(string)
  default     = []
}

variable "retention_date" {
  description = "The retention date (YYYY-MM-DD, UTC): before it, the agents may not delete objects or versions nor schedule the key's deletion."
  type        = string

  validation {
    condition     = can(formatdate("YYYY", "${var.retention_date}T00:00:00Z"))
    error_message = "retention_date must be a calendar date written YYYY-MM-DD."
  }
}

variable "legal_hold" {
  description = "Under a legal hold the agents may never delete or shred, whatever the date."
  type        = bool
  default     = false
}

variable "account_id" {
  description = "The AWS account id (the key policy delegates key management to the account's IAM)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "partition" {
  description = "The AWS partition."
  type        = string
  default     = "aws"
}
