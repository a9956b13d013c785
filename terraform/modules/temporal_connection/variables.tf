variable "mode" {
  description = "`self-hosted`: a Temporal server the workers reach over plain gRPC inside the VPC; `cloud`: Temporal Cloud over mTLS, the client certificate and key read from Secrets Manager at boot."
  type        = string
  default     = "self-hosted"

  validation {
    condition     = contains(["self-hosted", "cloud"], var.mode)
    error_message = "mode is self-hosted or cloud."
  }
}

variable "address" {
  description = "gRPC address host:port of the Temporal frontend (Temporal Cloud: <namespace>.<account>.tmprl.cloud:7233)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9.-]+:[0-9]{1,5}$", var.address))
    error_message = "address is host:port."
  }
}

variable "namespace" {
  description = "Temporal namespace of every workflow (Temporal Cloud: <namespace>.<account>)."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,255}$", var.namespace))
    error_message = "namespace is letters, digits, dots, underscores and hyphens."
  }
}

variable "task_queue_prefix" {
  description = "Prefix of every task queue (<prefix>-cpu, -gpu, -index, -retrieval-g<n>): deployments sharing a Temporal namespace keep apart by it."
  type        = string
  default     = "tttnn"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.task_queue_prefix))
    error_message = "task_queue_prefix is letters, digits, _ . - only (the config schema's rule)."
  }
}

variable "tls_cert_secret_arn" {
  description = "Secrets Manager ARN of the PEM client certificate (mode = cloud). Only the ARN is in Terraform; the certificate never is."
  type        = string
  default     = ""
}

variable "tls_key_secret_arn" {
  description = "Secrets Manager ARN of the PEM private key of the client certificate (mode = cloud)."
  type        = string
  default     = ""

  validation {
    condition     = var.mode == "self-hosted" ? var.tls_key_secret_arn == "" && var.tls_cert_secret_arn == "" : can(regex("^arn:aws[a-z-]*:secretsmanager:", var.tls_key_secret_arn)) && can(regex("^arn:aws[a-z-]*:secretsmanager:", var.tls_cert_secret_arn))
    error_message = "mode = cloud needs tls_cert_secret_arn and tls_key_secret_arn (Secrets Manager ARNs); self-hosted takes neither."
  }
}
