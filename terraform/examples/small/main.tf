# A few GPU workers for a sample run: the demo corpus (samples/corpus) ingested, indexed and evaluated on AWS.
# terraform init && terraform apply -var bucket_name=... -var vpc_id=... -var 'subnet_ids=[...]' -var tttnn_version=...

variable "bucket_name" {
  description = "Name of the artifact bucket (globally unique)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the workers."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the workers."
  type        = list(string)
}

variable "temporal_address" {
  description = "host:port of a self-hosted Temporal frontend reachable from the subnets."
  type        = string
}

variable "tttnn_version" {
  description = "The tttnn release in the bucket (releases/tttnn-<version>.tar.gz)."
  type        = string
}

module "tttnn" {
  source        = "../.."
  name          = "tttnn-small"
  region        = "us-east-1"
  bucket_name   = var.bucket_name
  force_destroy = true
  vpc_id        = var.vpc_id
  subnet_ids    = var.subnet_ids
  tttnn_version = var.tttnn_version
  index_name    = "demo"
  temporal = {
    address           = var.temporal_address
    task_queue_prefix = "small"
  }
  # 2 x g6e.xlarge (1 NVIDIA L40S each), spot with an on-demand base of 1.
  gpu_fleet = {
    instance_types          = ["g6e.xlarge", "g6e.2xlarge"]
    max_size                = 2
    desired_capacity        = 2
    on_demand_base_capacity = 1
  }
  cpu_fleet = {
    instance_types   = ["m7i.large"]
    max_size         = 1
    desired_capacity = 1
  }
  index_fleet = {
    instance_types   = ["m7i.xlarge"]
    max_size         = 1
    desired_capacity = 1
  }
  retrieval_fleets = {
    "0-7" = { instance_types = ["r7i.large"], max_size = 1, desired_capacity = 1 }
  }
}

output "store_url" {
  description = "s3:// URL of the store."
  value       = module.tttnn.store_url
}

output "task_queues" {
  description = "Temporal task queue names."
  value       = module.tttnn.task_queues
}
