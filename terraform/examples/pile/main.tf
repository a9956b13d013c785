# Sized for a full Pile rebuild (ingest, embeddings with MiniLM, one index per shard) and an evaluation, on
# Temporal Cloud. The Pile train split is ~210 M documents: at 50,000 per shard ~4,200 shards, at 64 shards per
# retrieval group ~66 groups, and ~320 GB of float32 MiniLM vectors (384 dims) before the HNSW graph: four
# retrieval ranges of ~17 groups, ~80 GB of vectors each, on 128 GiB machines. Scale the index fleet to 0 after the
# build and the GPU fleet to what the evaluation needs (README).

variable "bucket_name" {
  description = "Name of the artifact bucket (globally unique)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the workers."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the workers, in several availability zones (wider spot pools)."
  type        = list(string)
}

variable "temporal_address" {
  description = "Temporal Cloud endpoint, <namespace>.<account>.tmprl.cloud:7233."
  type        = string
}

variable "temporal_namespace" {
  description = "Temporal Cloud namespace, <namespace>.<account>."
  type        = string
}

variable "temporal_tls_cert_secret_arn" {
  description = "Secrets Manager ARN of the PEM client certificate for Temporal Cloud."
  type        = string
}

variable "temporal_tls_key_secret_arn" {
  description = "Secrets Manager ARN of the PEM private key of that certificate."
  type        = string
}

variable "tttnn_version" {
  description = "The tttnn release in the bucket (releases/tttnn-<version>.tar.gz)."
  type        = string
}

module "tttnn" {
  source         = "../.."
  name           = "tttnn-pile"
  region         = "us-east-1"
  bucket_name    = var.bucket_name
  vpc_id         = var.vpc_id
  subnet_ids     = var.subnet_ids
  tttnn_version  = var.tttnn_version
  index_name     = "pile"
  input_prefixes = ["pile/"]
  temporal = {
    mode                = "cloud"
    address             = var.temporal_address
    namespace           = var.temporal_namespace
    task_queue_prefix   = "pile"
    tls_cert_secret_arn = var.temporal_tls_cert_secret_arn
    tls_key_secret_arn  = var.temporal_tls_key_secret_arn
  }
  extra_env = {
    TTTNN_INDEX_SHARDS_PER_GROUP = "64"
  }
  # 16 x g6e.xlarge (1 L40S each), 80 % spot above an on-demand base of 2. For p5 use
  # instance_types = ["p5.48xlarge"], gpus_per_instance = 8 and fewer instances.
  gpu_fleet = {
    instance_types          = ["g6e.xlarge", "g6e.2xlarge"]
    gpus_per_instance       = 1
    max_size                = 32
    desired_capacity        = 16
    on_demand_base_capacity = 2
    on_demand_percentage    = 20
  }
  # Ingest: one ingestFile per input file, 4 processes x 2 activities per machine (30 Pile files in ~4 machines).
  cpu_fleet = {
    instance_types          = ["m7i.2xlarge"]
    processes_per_instance  = 4
    max_size                = 4
    desired_capacity        = 4
    on_demand_base_capacity = 1
  }
  index_fleet = {
    instance_types   = ["m7i.4xlarge", "m6i.4xlarge"]
    max_size         = 16
    desired_capacity = 8
  }
  retrieval_fleets = {
    "0-16"  = { instance_types = ["r7i.4xlarge", "r6i.4xlarge"], max_size = 2, desired_capacity = 2, on_demand_base_capacity = 1 }
    "17-33" = { instance_types = ["r7i.4xlarge", "r6i.4xlarge"], max_size = 2, desired_capacity = 2, on_demand_base_capacity = 1 }
    "34-50" = { instance_types = ["r7i.4xlarge", "r6i.4xlarge"], max_size = 2, desired_capacity = 2, on_demand_base_capacity = 1 }
    "51-67" = { instance_types = ["r7i.4xlarge", "r6i.4xlarge"], max_size = 2, desired_capacity = 2, on_demand_base_capacity = 1 }
  }
}

output "store_url" {
  description = "s3:// URL of the store."
  value       = module.tttnn.store_url
}

output "role_arns" {
  description = "IAM role ARN per worker kind."
  value       = module.tttnn.role_arns
}

output "autoscaling_groups" {
  description = "Auto Scaling group name per fleet."
  value       = module.tttnn.autoscaling_groups
}
