variable "name" {
  description = "Name of this fleet (its Auto Scaling group, launch template and security group)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,48}$", var.name))
    error_message = "name is 1-48 letters, digits and hyphens."
  }
}

variable "kind" {
  description = "Worker kind: gpu, cpu, index or retrieval. Picks the AMI family and whether `tttnn setup --gpu` runs."
  type        = string

  validation {
    condition     = contains(["gpu", "cpu", "index", "retrieval"], var.kind)
    error_message = "kind is gpu, cpu, index or retrieval."
  }
}

variable "queues" {
  description = "Queue kinds the workers poll, passed to `tttnn worker --queues` (comma-separated: cpu, gpu, index, retrieval)."
  type        = string

  validation {
    condition     = can(regex("^(cpu|gpu|index|retrieval)(,(cpu|gpu|index|retrieval))*$", var.queues))
    error_message = "queues is a comma-separated list of cpu, gpu, index, retrieval."
  }
}

variable "instance_types" {
  description = "Instance types the group may launch, in order of preference (e.g. [\"g6e.xlarge\", \"g6e.2xlarge\"] or [\"p5.48xlarge\"]); several types widen the spot pools."
  type        = list(string)

  validation {
    condition     = length(var.instance_types) > 0 && alltrue([for t in var.instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "instance_types is a non-empty list of EC2 instance types."
  }
}

variable "processes_per_instance" {
  description = "Worker processes per instance: the number of GPUs on GPU instances (each process gets CUDA_VISIBLE_DEVICES=<i>), else e.g. one per 2 cores for ingest."
  type        = number
  default     = 1

  validation {
    condition     = var.processes_per_instance >= 1 && var.processes_per_instance <= 64 && floor(var.processes_per_instance) == var.processes_per_instance
    error_message = "processes_per_instance is a whole number from 1 to 64."
  }
}

variable "ami_ssm_parameter" {
  description = "SSM parameter holding the AMI id. GPU: the AWS Deep Learning Base OSS NVIDIA-driver AMI (Amazon Linux 2023); else Amazon Linux 2023."
  type        = string
}

variable "min_size" {
  description = "Fewest instances of the group."
  type        = number
  default     = 0

  validation {
    condition     = var.min_size >= 0
    error_message = "min_size is 0 or more."
  }
}

variable "max_size" {
  description = "Most instances of the group."
  type        = number

  validation {
    condition     = var.max_size >= 0
    error_message = "max_size is 0 or more."
  }
}

variable "desired_capacity" {
  description = "Instances to run now (scale to 0 between runs)."
  type        = number

  validation {
    condition     = var.desired_capacity >= 0
    error_message = "desired_capacity is 0 or more."
  }
}

variable "on_demand_base_capacity" {
  description = "Instances that are always on-demand, before the percentage below applies."
  type        = number
  default     = 0

  validation {
    condition     = var.on_demand_base_capacity >= 0
    error_message = "on_demand_base_capacity is 0 or more."
  }
}

variable "on_demand_percentage" {
  description = "Percentage of the instances above the base that are on-demand; the rest are spot (capacity-optimized, with capacity rebalancing)."
  type        = number
  default     = 0

  validation {
    condition     = var.on_demand_percentage >= 0 && var.on_demand_percentage <= 100
    error_message = "on_demand_percentage is between 0 and 100."
  }
}

variable "subnet_ids" {
  description = "Private subnets (with a NAT gateway or VPC endpoints for S3, Secrets Manager and the package registries) the instances start in."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids is a non-empty list of subnet ids."
  }
}

variable "vpc_id" {
  description = "VPC of the subnets."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id is a VPC id."
  }
}

variable "temporal_port" {
  description = "TCP port of the Temporal frontend that the workers connect to (egress rule)."
  type        = number
  default     = 7233
}

variable "instance_profile_name" {
  description = "Instance profile of the worker kind (worker_iam output)."
  type        = string
}

variable "root_volume_gb" {
  description = "Root volume size (gp3, encrypted): Node, tttnn, the CUDA wheels (GPU: ~6 GB) and toolsDir's caches (models, corpus shards, index files)."
  type        = number
  default     = 100

  validation {
    condition     = var.root_volume_gb >= 30
    error_message = "root_volume_gb is at least 30."
  }
}

variable "user_data" {
  description = "Values of user-data.sh.tftpl other than the drain script and processes (built by the root module)."
  type = object({
    region                    = string
    node_version              = string
    node_integrity            = string
    npm_version               = string
    npm_integrity             = string
    release_url               = string
    temporal_address          = string
    temporal_namespace        = string
    task_queue_prefix         = string
    tls_cert_file             = string
    tls_key_file              = string
    tls_cert_secret_arn       = string
    tls_key_secret_arn        = string
    backend                   = string
    max_concurrent_activities = number
    shutdown_grace_seconds    = number
    retrieval_groups          = string
    index_root                = string
    eval_root                 = string
    extra_env                 = map(string)
  })
}

variable "tags" {
  description = "Tags of every resource of this module, propagated to the instances."
  type        = map(string)
  default     = {}
}
