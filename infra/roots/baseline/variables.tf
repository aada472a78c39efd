# Written by the driver from the rendered variables and the target's settings
# (the single root's variables.tf validates the same values in its layout).

variable "org_slug" {
  description = "The party's slug (lower-case), prefix of every name."
  type        = string
}

variable "default_region" {
  description = "The party's default region: this root's provider region."
  type        = string

  validation {
    condition     = contains(["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"], var.default_region)
    error_message = "default_region must be an AWS region inside the European Union."
  }
}

variable "password_policy" {
  description = "IAM account password policy from the policies."
  type = object({
    minimum_length    = number
    require_lowercase = bool
    require_uppercase = bool
    require_numbers   = bool
    require_symbols   = bool
    reuse_prevention  = number
    max_age_days      = number
  })
}

variable "people" {
  description = "Ids of every person; each gets an IAM user forced to MFA."
  type        = list(string)
}

variable "administrators" {
  description = "Ids of the administrators (a subset of people)."
  type        = list(string)

  validation {
    condition     = length(var.administrators) > 0
    error_message = "At least one administrator is needed."
  }
}

variable "manage_account_public_access_block" {
  description = "Set the account-level S3 public access block."
  type        = bool
  default     = true
}

variable "deployer_principal_arns" {
  description = "IAM role (or user) ARNs that run Terraform; empty: the principal running this plan, on the emulator only."
  type        = list(string)
  default     = []

  validation {
    condition     = var.aws_endpoint != null || length(var.deployer_principal_arns) > 0
    error_message = "On AWS, deployer_principal_arns must name the deploying principals (aws.deployer_principals in policies/baseline.yml)."
  }
}

variable "break_glass_role_arns" {
  description = "Emergency administrator role ARNs, excepted like the deployers."
  type        = list(string)
  default     = []

  validation {
    condition     = var.aws_endpoint != null || length(var.break_glass_role_arns) > 0
    error_message = "On AWS, break_glass_role_arns must name at least one emergency role (aws.break_glass_roles in policies/baseline.yml)."
  }
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
