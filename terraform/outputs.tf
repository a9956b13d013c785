output "bucket" {
  description = "The artifact bucket."
  value       = module.bucket.bucket
}

output "store_url" {
  description = "s3:// URL of the store: corpus, models, indexes, evaluations and releases live under it."
  value       = module.bucket.store_url
}

output "index_root" {
  description = "index.root of the deployment (TTTNN_INDEX_ROOT)."
  value       = local.index_root
}

output "eval_root" {
  description = "eval.root of the deployment (TTTNN_EVAL_ROOT)."
  value       = local.eval_root
}

output "kms_key_arn" {
  description = "The bucket's KMS key (the operator's own role needs kms:Decrypt and kms:GenerateDataKey on it)."
  value       = module.bucket.kms_key_arn
}

output "task_queues" {
  description = "Temporal task queue names per kind."
  value       = module.temporal.task_queues
}

output "role_arns" {
  description = "IAM role ARN per worker kind."
  value       = module.iam.role_arns
}

output "autoscaling_groups" {
  description = "Auto Scaling group name per fleet."
  value = merge(
    {
      gpu   = module.gpu_fleet.autoscaling_group_name
      cpu   = module.cpu_fleet.autoscaling_group_name
      index = module.index_fleet.autoscaling_group_name
    },
    { for groups, fleet in module.retrieval_fleet : "retrieval-${groups}" => fleet.autoscaling_group_name },
  )
}
