# tttnn on AWS: the artifact bucket, one least-privilege role per worker kind, the Temporal connection, and the
# GPU, cpu, index and retrieval worker fleets. Examples: examples/small, examples/pile. README.md says how to apply.

provider "aws" {
  region = var.region
  default_tags {
    tags = merge({ "tttnn:deployment" = var.name }, var.tags)
  }
}

module "bucket" {
  source        = "./modules/artifact_bucket"
  name          = var.bucket_name
  store_prefix  = var.store_prefix
  force_destroy = var.force_destroy
}

module "temporal" {
  source              = "./modules/temporal_connection"
  mode                = var.temporal.mode
  address             = var.temporal.address
  namespace           = var.temporal.namespace
  task_queue_prefix   = var.temporal.task_queue_prefix
  tls_cert_secret_arn = var.temporal.tls_cert_secret_arn
  tls_key_secret_arn  = var.temporal.tls_key_secret_arn
}

module "iam" {
  source               = "./modules/worker_iam"
  name_prefix          = var.name
  bucket_arn           = module.bucket.bucket_arn
  kms_key_arn          = module.bucket.kms_key_arn
  store_prefix         = var.store_prefix
  input_prefixes       = var.input_prefixes
  temporal_secret_arns = module.temporal.secret_arns
}

locals {
  store_url  = module.bucket.store_url
  index_root = "${local.store_url}/indexes/${var.index_name}"
  eval_root  = "${local.store_url}/evals"

  # What every worker's user-data needs; the fleets add the queues, processes and backend.
  user_data = {
    region                    = var.region
    node_version              = var.node.version
    node_integrity            = var.node.integrity
    npm_version               = var.node.npm_version
    npm_integrity             = var.node.npm_integrity
    release_url               = "${local.store_url}/releases/tttnn-${var.tttnn_version}.tar.gz"
    temporal_address          = module.temporal.address
    temporal_namespace        = module.temporal.namespace
    task_queue_prefix         = module.temporal.task_queue_prefix
    tls_cert_file             = module.temporal.tls_cert_file
    tls_key_file              = module.temporal.tls_key_file
    tls_cert_secret_arn       = module.temporal.tls_cert_secret_arn
    tls_key_secret_arn        = module.temporal.tls_key_secret_arn
    backend                   = "auto"
    max_concurrent_activities = 2
    shutdown_grace_seconds    = var.shutdown_grace_seconds
    retrieval_groups          = "0-7"
    index_root                = local.index_root
    eval_root                 = local.eval_root
    extra_env                 = var.extra_env
  }
  temporal_port = tonumber(element(split(":", var.temporal.address), 1))
}

module "gpu_fleet" {
  source                  = "./modules/worker_fleet"
  name                    = "${var.name}-gpu"
  kind                    = "gpu"
  queues                  = "gpu"
  instance_types          = var.gpu_fleet.instance_types
  processes_per_instance  = var.gpu_fleet.gpus_per_instance
  ami_ssm_parameter       = var.gpu_ami_ssm_parameter
  min_size                = var.gpu_fleet.min_size
  max_size                = var.gpu_fleet.max_size
  desired_capacity        = var.gpu_fleet.desired_capacity
  on_demand_base_capacity = var.gpu_fleet.on_demand_base_capacity
  on_demand_percentage    = var.gpu_fleet.on_demand_percentage
  root_volume_gb          = var.gpu_fleet.root_volume_gb
  vpc_id                  = var.vpc_id
  subnet_ids              = var.subnet_ids
  temporal_port           = local.temporal_port
  instance_profile_name   = module.iam.instance_profile_names["gpu"]
  # One document at a time per GPU process (docs/runbook.md); the CUDA build is mandatory.
  user_data = merge(local.user_data, { backend = "tensorflow-gpu", max_concurrent_activities = 1 })
}

module "cpu_fleet" {
  source                  = "./modules/worker_fleet"
  name                    = "${var.name}-cpu"
  kind                    = "cpu"
  queues                  = "cpu"
  instance_types          = var.cpu_fleet.instance_types
  processes_per_instance  = var.cpu_fleet.processes_per_instance
  ami_ssm_parameter       = var.cpu_ami_ssm_parameter
  min_size                = var.cpu_fleet.min_size
  max_size                = var.cpu_fleet.max_size
  desired_capacity        = var.cpu_fleet.desired_capacity
  on_demand_base_capacity = var.cpu_fleet.on_demand_base_capacity
  on_demand_percentage    = var.cpu_fleet.on_demand_percentage
  root_volume_gb          = var.cpu_fleet.root_volume_gb
  vpc_id                  = var.vpc_id
  subnet_ids              = var.subnet_ids
  temporal_port           = local.temporal_port
  instance_profile_name   = module.iam.instance_profile_names["cpu"]
  user_data               = local.user_data
}

module "index_fleet" {
  source                  = "./modules/worker_fleet"
  name                    = "${var.name}-index"
  kind                    = "index"
  queues                  = "index"
  instance_types          = var.index_fleet.instance_types
  processes_per_instance  = var.index_fleet.processes_per_instance
  ami_ssm_parameter       = var.cpu_ami_ssm_parameter
  min_size                = var.index_fleet.min_size
  max_size                = var.index_fleet.max_size
  desired_capacity        = var.index_fleet.desired_capacity
  on_demand_base_capacity = var.index_fleet.on_demand_base_capacity
  on_demand_percentage    = var.index_fleet.on_demand_percentage
  root_volume_gb          = var.index_fleet.root_volume_gb
  vpc_id                  = var.vpc_id
  subnet_ids              = var.subnet_ids
  temporal_port           = local.temporal_port
  instance_profile_name   = module.iam.instance_profile_names["index"]
  user_data               = local.user_data
}

module "retrieval_fleet" {
  source                  = "./modules/worker_fleet"
  for_each                = var.retrieval_fleets
  name                    = "${var.name}-retrieval-${each.key}"
  kind                    = "retrieval"
  queues                  = "retrieval"
  instance_types          = each.value.instance_types
  ami_ssm_parameter       = var.cpu_ami_ssm_parameter
  min_size                = each.value.min_size
  max_size                = each.value.max_size
  desired_capacity        = each.value.desired_capacity
  on_demand_base_capacity = each.value.on_demand_base_capacity
  on_demand_percentage    = each.value.on_demand_percentage
  root_volume_gb          = each.value.root_volume_gb
  vpc_id                  = var.vpc_id
  subnet_ids              = var.subnet_ids
  temporal_port           = local.temporal_port
  instance_profile_name   = module.iam.instance_profile_names["retrieval"]
  user_data               = merge(local.user_data, { retrieval_groups = each.key })
}
