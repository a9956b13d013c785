variable "name_prefix" {
  description = "Prefix of the role and instance profile names (<name_prefix>-gpu, -index, -retrieval, -cpu)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,40}$", var.name_prefix))
    error_message = "name_prefix is 1-40 characters of an IAM name."
  }
}

variable "bucket_arn" {
  description = "ARN of the artifact bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.bucket_arn))
    error_message = "bucket_arn is an S3 bucket ARN."
  }
}

variable "kms_key_arn" {
  description = "ARN of the bucket's KMS key."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn is a KMS key ARN."
  }
}

variable "store_prefix" {
  description = "Key prefix of the store in the bucket (corpus/, models/, indexes/, evals/, samples/, releases/ are under it)."
  type        = string
}

variable "input_prefixes" {
  description = "Bucket-relative prefixes of raw Pile-format input that cpu workers read during ingest (e.g. \"pile/\"); <store_prefix>/samples/ is always readable."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.input_prefixes : can(regex("^[A-Za-z0-9!_.'()-]+(/[A-Za-z0-9!_.'()-]+)*/$", p))])
    error_message = "input_prefixes end with a slash and contain no wildcards."
  }
}

variable "temporal_secret_arns" {
  description = "Secrets Manager ARNs the workers read at boot (Temporal Cloud client certificate and key); empty for a self-hosted Temporal without mTLS."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.temporal_secret_arns : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:", arn))])
    error_message = "temporal_secret_arns are Secrets Manager secret ARNs."
  }
}

variable "tags" {
  description = "Tags of every resource of this module."
  type        = map(string)
  default     = {}
}
