variable "election_id" {
  description = "The election's id from its policy file (lower-case slug)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$", var.election_id))
    error_message = "election_id must be a lower-case slug (letters, digits, dashes), 3 to 40 characters."
  }
}

variable "region" {
  description = "The AWS region the election's data must stay in; must be the region of the provider passed to this module."
  type        = string

  validation {
    condition     = contains(["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"], var.region)
    error_message = "region must be an AWS region inside the European Union (eu-west-3, eu-west-1, eu-central-1, eu-north-1, eu-south-1, eu-south-2); London and Zurich are outside the EU."
  }
}

variable "bucket_name" {
  description = "Name of the election's bucket."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lower-case letters, digits, dots and dashes)."
  }
}

variable "retention_date" {
  description = "The retention agent's due date (YYYY-MM-DD, UTC) for the campaign data; the lifecycle backstop expires the campaign prefixes lifecycle_backstop_days later."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.retention_date)) && can(formatdate("YYYY", "${var.retention_date}T00:00:00Z"))
    error_message = "retention_date must be a calendar date written YYYY-MM-DD."
  }
}

variable "campaign_prefixes" {
  description = "Object prefixes of the election's CAMPAIGN datasets (destroyed at retention); permanent datasets' prefixes must not be listed. Each gets its own expiry rule."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.campaign_prefixes : length(p) > 0 && endswith(p, "/")])
    error_message = "campaign_prefixes must be non-empty prefixes ending with '/': an empty prefix would expire the whole bucket, permanent datasets included."
  }
}

variable "lifecycle_backstop_days" {
  description = "Days after the retention date at which the lifecycle rules expire the campaign datasets: a backstop behind the retention agent, never the first deleter."
  type        = number
  default     = 14

  validation {
    condition     = var.lifecycle_backstop_days >= 1 && var.lifecycle_backstop_days <= 60 && floor(var.lifecycle_backstop_days) == var.lifecycle_backstop_days
    error_message = "lifecycle_backstop_days must be a whole number of days from 1 to 60 (the exposure check accepts no later backstop)."
  }
}

variable "legal_hold" {
  description = "True while a court case or a campaign-finance review forbids deleting the data: the expiry rule is then disabled."
  type        = bool
  default     = false
}

variable "kms_deletion_window_days" {
  description = "Days between scheduling the election key's deletion and its destruction (AWS allows 7 to 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30 && floor(var.kms_deletion_window_days) == var.kms_deletion_window_days
    error_message = "kms_deletion_window_days must be a whole number of days from 7 to 30."
  }
}

variable "noncurrent_version_days" {
  description = "Days after which a non-current object version is deleted (every object, permanent datasets included: a person's erasure relies on it before the retention date)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 30
    error_message = "noncurrent_version_days must be from 1 to 30: old versions, erased persons' rows among them, must not linger past a month."
  }
}

variable "log_bucket_name" {
  description = "The account's access-log bucket in this region (server access logs must stay in the bucket's region)."
  type        = string
}

variable "member_arns" {
  description = "IAM user ARNs of the election's members: with the agents' role, the only principals that may use its objects and its key (the bucket and key policies deny everyone else)."
  type        = list(string)

  validation {
    condition     = alltrue([for a in var.member_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:user/", a))])
    error_message = "member_arns must list IAM user ARNs."
  }
}

variable "agent_role_arn" {
  description = "ARN of the agents' role: may use the data, may delete it and shred the key only from the retention date, never under a legal hold."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", var.agent_role_arn))
    error_message = "agent_role_arn must be an IAM role ARN."
  }
}

variable "admin_principal_arns" {
  description = "Principals that administer the bucket: the deploying principals and break-glass roles. They may list it (refresh calls HeadBucket, authorised as s3:ListBucket) and manage its settings and policy; its objects stay denied to them. IAM Identity Center roles may end in a wildcard (ArnNotLike)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:(root$|user/|role/)", a))])
    error_message = "admin_principal_arns must list IAM role or user ARNs (or the account root)."
  }
}

variable "account_id" {
  description = "The AWS account id (the key policy delegates to the account's IAM)."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "tags" {
  description = "Extra tags for every resource of the election."
  type        = map(string)
  default     = {}
}
