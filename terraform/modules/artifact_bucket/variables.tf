variable "name" {
  description = "Name of the artifact bucket (globally unique). Every tttnn location is s3://<name>/<store_prefix>/..."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "A bucket name is 3-63 lowercase letters, digits, dots and hyphens."
  }
}

variable "store_prefix" {
  description = "Key prefix under which tttnn keeps corpus/, models/, indexes/, evals/, samples/, releases/ (no leading or trailing slash)."
  type        = string
  default     = "tttnn"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]*$", var.store_prefix))
    error_message = "store_prefix is one path segment: lowercase letters, digits, _ and -."
  }
}

variable "checkpoint_noncurrent_days" {
  description = "Days after which overwritten or deleted objects under <store_prefix>/evals/runs/ (in practice: training checkpoints, rewritten every eval.checkpointEvery neighbors and deleted once their document commits) are removed for good."
  type        = number
  default     = 2

  validation {
    condition     = var.checkpoint_noncurrent_days >= 1 && var.checkpoint_noncurrent_days <= 365
    error_message = "checkpoint_noncurrent_days is between 1 and 365."
  }
}

variable "superseded_build_noncurrent_days" {
  description = "Days after which deleted objects of index builds (a superseded build removed with `aws s3 rm --recursive`) and withdrawn manifests are removed for good."
  type        = number
  default     = 7

  validation {
    condition     = var.superseded_build_noncurrent_days >= 1 && var.superseded_build_noncurrent_days <= 365
    error_message = "superseded_build_noncurrent_days is between 1 and 365."
  }
}

variable "builds_tiering_days" {
  description = "Days after which index build objects move to S3 Intelligent-Tiering: a superseded build nobody reads gets cheaper by itself, the serving build stays in the frequent tier while retrieval workers read it."
  type        = number
  default     = 30

  validation {
    condition     = var.builds_tiering_days >= 0
    error_message = "builds_tiering_days is 0 or more."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a bucket that still holds objects (every artifact is lost). Keep false outside throwaway examples."
  type        = bool
  default     = false
}

variable "admin_role_arns" {
  description = "IAM principals (role or user ARNs) that administer the bucket's KMS key besides the account root."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.admin_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/", arn))])
    error_message = "admin_role_arns are IAM role or user ARNs."
  }
}

variable "tags" {
  description = "Tags of every resource of this module."
  type        = map(string)
  default     = {}
}
