variable "org_slug" {
  description = "The party's slug: prefixes every name (groups, role, buckets)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,28}[a-z0-9]$", var.org_slug))
    error_message = "org_slug must be a lower-case slug of 3 to 30 characters."
  }
}

variable "password_policy" {
  description = "The account's IAM password policy, from the policies (CNIL 2022-100: no forced expiry unless max_age_days > 0)."
  type = object({
    minimum_length    = number
    require_lowercase = bool
    require_uppercase = bool
    require_numbers   = bool
    require_symbols   = bool
    reuse_prevention  = number
    max_age_days      = number
  })

  validation {
    condition     = var.password_policy.minimum_length >= 12 && var.password_policy.minimum_length <= 128
    error_message = "password_policy.minimum_length must be 12 to 128: the CNIL asks for at least 12 characters."
  }

  validation {
    condition     = var.password_policy.reuse_prevention >= 0 && var.password_policy.reuse_prevention <= 24
    error_message = "password_policy.reuse_prevention must be 0 to 24 (AWS's limits)."
  }

  validation {
    condition     = var.password_policy.max_age_days >= 0 && var.password_policy.max_age_days <= 1095
    error_message = "password_policy.max_age_days must be 0 (no forced change) to 1095."
  }
}

variable "people" {
  description = "Ids of every person who gets an IAM user (valid Unix user names)."
  type        = list(string)

  validation {
    condition     = alltrue([for p in var.people : can(regex("^[a-z_][a-z0-9_-]{0,31}$", p))])
    error_message = "people ids must be valid Unix user names (lower-case, at most 32 characters)."
  }
}

variable "administrators" {
  description = "Ids of the people who administer the kit (a subset of people)."
  type        = list(string)
}

variable "manage_account_public_access_block" {
  description = "Set the account-level S3 public access block (all four flags). Off only where the API is not available."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
