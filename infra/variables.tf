# Inputs rendered by `isoloir policy render` into terraform/terraform.tfvars.json
# (docs/contracts.md), then the target's settings (set by `isoloir infra`).

variable "org_slug" {
  description = "The party's slug (lower-case), prefix of every name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,28}[a-z0-9]$", var.org_slug))
    error_message = "org_slug must be a lower-case slug of 3 to 30 characters (letters, digits, dashes)."
  }
}

variable "default_region" {
  description = "The party's default region."
  type        = string

  validation {
    condition     = contains(["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"], var.default_region)
    error_message = "default_region must be an AWS region inside the European Union: eu-west-3 (Paris), eu-west-1, eu-central-1, eu-north-1, eu-south-1 or eu-south-2; London and Zurich are outside the EU."
  }
}

variable "allowed_regions" {
  description = "Regions elections may use (all inside the EU)."
  type        = list(string)

  validation {
    condition     = length(var.allowed_regions) > 0 && alltrue([for r in var.allowed_regions : contains(["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"], r)])
    error_message = "allowed_regions must list AWS regions inside the European Union only (eu-west-3, eu-west-1, eu-central-1, eu-north-1, eu-south-1, eu-south-2)."
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

  validation {
    condition     = var.password_policy.minimum_length >= 12
    error_message = "password_policy.minimum_length must be at least 12 (CNIL 2022-100)."
  }
}

variable "kms_deletion_window_days" {
  description = "Days between scheduling an election key's deletion and its destruction (7 to 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be from 7 to 30 (AWS's limits)."
  }
}

variable "admin_networks" {
  description = "CIDR blocks from which administrators reach SSH and SMB."
  type        = list(string)

  validation {
    condition     = length(var.admin_networks) > 0 && alltrue([for c in var.admin_networks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "admin_networks must be CIDR blocks, and never 0.0.0.0/0."
  }
}

variable "log_bucket_name" {
  description = "Name of the access-log bucket of the default region (others get a -<region> suffix)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,48}[a-z0-9]$", var.log_bucket_name))
    error_message = "log_bucket_name must be a valid S3 bucket name of at most 50 characters (a region suffix is added outside the default region)."
  }
}

variable "administrators" {
  description = "Ids of the administrators (a subset of people)."
  type        = list(string)

  validation {
    condition     = length(var.administrators) > 0
    error_message = "At least one administrator is needed."
  }
}

variable "people" {
  description = "Ids of every person (valid Unix user names); each gets an IAM user forced to MFA."
  type        = list(string)

  validation {
    condition     = alltrue([for p in var.people : can(regex("^[a-z_][a-z0-9_-]{0,31}$", p))])
    error_message = "people ids must be valid Unix user names."
  }

  validation {
    condition     = alltrue([for a in var.administrators : contains(var.people, a)])
    error_message = "Every administrator must be one of people."
  }
}

variable "elections" {
  description = "The elections, by id, as rendered from policies/elections/*.yml."
  type = map(object({
    label            = string
    region           = string
    bucket_name      = string
    retention_date   = string
    legal_hold       = bool
    members          = list(string)
    dataset_prefixes = optional(list(string), [])
    # Only these expire by lifecycle (a backstop after the retention agent);
    # permanent datasets' prefixes are never listed here.
    campaign_prefixes = optional(list(string), [])
  }))

  validation {
    condition     = alltrue([for id, e in var.elections : contains(["eu-west-3", "eu-west-1", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2"], e.region)])
    error_message = "Every election's region must be an AWS region inside the European Union (eu-west-3, eu-west-1, eu-central-1, eu-north-1, eu-south-1, eu-south-2): its voters' data may not leave the EU."
  }

  validation {
    condition     = alltrue([for id, e in var.elections : contains(var.allowed_regions, e.region)])
    error_message = "Every election's region must be one of allowed_regions."
  }

  validation {
    condition     = alltrue([for id, e in var.elections : can(regex("^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$", id))])
    error_message = "Election ids must be lower-case slugs of 3 to 40 characters."
  }

  validation {
    condition     = alltrue([for id, e in var.elections : can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", e.retention_date))])
    error_message = "Every election's retention_date must be a date written YYYY-MM-DD."
  }

  validation {
    condition     = alltrue([for id, e in var.elections : alltrue([for m in e.members : contains(var.people, m)])])
    error_message = "Every election member must be one of people."
  }

  validation {
    condition = alltrue([for id, e in var.elections : alltrue([
      for c in e.campaign_prefixes : length(c) > 0 && !anytrue([
        for d in e.dataset_prefixes : startswith(d, c) && !contains(e.campaign_prefixes, d)
      ])
    ])])
    error_message = "A campaign prefix must be non-empty and must not cover another (permanent) dataset's prefix: its expiry rule would delete that dataset."
  }

  validation {
    condition     = alltrue([for id, e in var.elections : startswith(e.bucket_name, "${var.org_slug}-")])
    error_message = "Every election's bucket name must start with \"<org_slug>-\": the agents' role and the access-log buckets' policy (aws:SourceArn) are scoped to the party's prefix."
  }

  validation {
    condition     = length(distinct([for id, e in var.elections : e.bucket_name])) == length(var.elections)
    error_message = "Two elections cannot share a bucket."
  }
}

variable "lifecycle_backstop_days" {
  description = "Days after an election's retention date at which S3 lifecycle expires its campaign datasets: a backstop behind the retention agent (which extracts consents and opt-outs, deletes and certifies), never the first deleter."
  type        = number
  default     = 14

  validation {
    condition     = var.lifecycle_backstop_days >= 1 && var.lifecycle_backstop_days <= 60 && floor(var.lifecycle_backstop_days) == var.lifecycle_backstop_days
    error_message = "lifecycle_backstop_days must be a whole number of days from 1 to 60."
  }
}

variable "deployer_principal_arns" {
  description = "IAM role (or user) ARNs that run Terraform, declared in the policies (aws.deployer_principals). The election buckets' data deny lets them list a bucket (refresh's HeadBucket = s3:ListBucket) and manage its settings, never read or write its objects. A role of IAM Identity Center may end in a wildcard, AWSReservedSSO_<set>_*, because its suffix changes when the permission set is re-provisioned. Empty: the principal running this plan, on the emulator only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.deployer_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+$", a)) || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/aws-reserved/sso\\.amazonaws\\.com/([a-z0-9-]+/)?AWSReservedSSO_[A-Za-z0-9+=,.@-]+_\\*$", a))])
    error_message = "deployer_principal_arns must list IAM role or user ARNs; the only wildcard allowed is an IAM Identity Center role ending in AWSReservedSSO_<permission set>_*."
  }

  validation {
    # TARGET=aws: whoever ran the last apply must not be the only one who can refresh.
    condition     = var.aws_endpoint != null || length(var.deployer_principal_arns) > 0
    error_message = "On AWS, deployer_principal_arns must name the deploying principals (aws.deployer_principals in policies/baseline.yml): otherwise the buckets let only whoever ran the last apply refresh them, and every other administrator gets 403."
  }
}

variable "break_glass_role_arns" {
  description = "Emergency administrator role ARNs (aws.break_glass_roles), excepted like the deployers: they may list the election buckets and manage their settings and policies, never read or write objects."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.break_glass_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$", a)) || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/aws-reserved/sso\\.amazonaws\\.com/([a-z0-9-]+/)?AWSReservedSSO_[A-Za-z0-9+=,.@-]+_\\*$", a))])
    error_message = "break_glass_role_arns must list IAM role ARNs (an IAM Identity Center role may end in AWSReservedSSO_<permission set>_*)."
  }

  validation {
    condition     = var.aws_endpoint != null || length(var.break_glass_role_arns) > 0
    error_message = "On AWS, break_glass_role_arns must name at least one emergency role (aws.break_glass_roles in policies/baseline.yml): it is who repairs a bucket policy when every deployer is gone."
  }
}

variable "mail_upstream" {
  description = "The party's smarthost the mail guard relays to (mail.upstream): the file-share host may open connections to its port (587 or 25). On AWS it is required when mail.enabled: the host cannot deliver directly on port 25 (EC2 restricts it)."
  type = object({
    host = string
    port = number
  })
  default = null

  validation {
    condition     = var.mail_upstream == null || try(var.mail_upstream.port >= 1 && var.mail_upstream.port <= 65535 && floor(var.mail_upstream.port) == var.mail_upstream.port, false)
    error_message = "mail_upstream.port must be a TCP port."
  }

  validation {
    condition     = var.aws_endpoint != null || !var.create_hosts || !var.mail_guard_enabled || var.mail_upstream != null
    error_message = "On AWS, the mail guard needs mail.upstream (the party's smarthost, port 587 or 25) in policies/baseline.yml: EC2 restricts direct delivery on port 25, and the hosts' security group opens only the upstream's port."
  }
}

variable "mail_guard_enabled" {
  description = "The campaign mail guard runs on the file-share hosts (mail.enabled): staff submit on 587 from the admin networks."
  type        = bool
  default     = false
}

variable "alert_smtp_port" {
  description = "Port of the alerts' SMTP server (alerts.email.port), opened for egress on the file-share hosts; null: no e-mail alerts."
  type        = number
  default     = 587
  nullable    = true
}

# ------------------------------------------------------------ target settings

variable "aws_endpoint" {
  description = "Endpoint of the AWS emulator for the local target (null: real AWS)."
  type        = string
  default     = null

  validation {
    condition     = var.aws_endpoint == null || can(regex("^https://127\\.[0-9]+\\.[0-9]+\\.[0-9]+:[0-9]+$", var.aws_endpoint))
    error_message = "aws_endpoint must be an https URL on the loopback range (the emulator), or null."
  }
}

variable "create_hosts" {
  description = "Create one file-share host per region holding elections (false: the shares are served elsewhere)."
  type        = bool
  default     = true
}

variable "host_image_ids" {
  description = "Debian 12 AMI id per region, for the file-share hosts."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for r, id in var.host_image_ids : can(regex("^ami-[0-9a-f]{8,17}$", id))])
    error_message = "host_image_ids values must be AMI ids."
  }

  validation {
    condition     = !var.create_hosts || alltrue([for id, e in var.elections : contains(keys(var.host_image_ids), e.region)])
    error_message = "create_hosts needs a Debian 12 AMI id in host_image_ids for every region holding an election."
  }
}

variable "host_detailed_monitoring" {
  description = "Detailed (one-minute) monitoring of the file-share hosts; the emulator does not implement it."
  type        = bool
  default     = true
}

variable "subnet_ids" {
  description = "Subnet of the file-share host per region (default: the first subnet of the default VPC)."
  type        = map(string)
  default     = {}
}

variable "manage_account_public_access_block" {
  description = "Set the account-level S3 public access block."
  type        = bool
  default     = true
}

variable "force_destroy_logs" {
  description = "Let `destroy` delete access-log buckets that still hold logs (local target only; in production logs outlive the stack)."
  type        = bool
  default     = false
}

variable "extra_tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "deploy_public_key" {
  description = "OpenSSH public key of the account Ansible uses on the file-share hosts (isoloir-deploy, made by cloud-init at first boot). Empty: no account is made."
  type        = string
  default     = ""

  validation {
    condition     = var.deploy_public_key == "" || can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*( .*)?$", trimspace(var.deploy_public_key)))
    error_message = "deploy_public_key must be one OpenSSH public key line (ssh-ed25519 AAAA... comment), or empty."
  }
}
