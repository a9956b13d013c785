output "address" {
  description = "temporal.address of every worker."
  value       = var.address
}

output "namespace" {
  description = "temporal.namespace of every worker."
  value       = var.namespace
}

output "task_queue_prefix" {
  description = "temporal.taskQueuePrefix of every worker."
  value       = var.task_queue_prefix
}

output "tls_cert_file" {
  description = "Where a worker keeps the client certificate (temporal.tlsCertFile); empty without mTLS."
  value       = local.cloud ? "/etc/tttnn/tls/client.pem" : ""
}

output "tls_key_file" {
  description = "Where a worker keeps the client key (temporal.tlsKeyFile); empty without mTLS."
  value       = local.cloud ? "/etc/tttnn/tls/client.key" : ""
}

output "tls_cert_secret_arn" {
  description = "ARN of the certificate's secret (empty without mTLS)."
  value       = var.tls_cert_secret_arn
}

output "tls_key_secret_arn" {
  description = "ARN of the key's secret (empty without mTLS)."
  value       = var.tls_key_secret_arn
}

output "secret_arns" {
  description = "The secrets the worker roles may read."
  value       = compact([var.tls_cert_secret_arn, var.tls_key_secret_arn])
}

output "task_queues" {
  description = "Task queue names per kind (retrieval: one queue per shard group, <prefix>-retrieval-g<n>)."
  value = {
    cpu       = "${var.task_queue_prefix}-cpu"
    gpu       = "${var.task_queue_prefix}-gpu"
    index     = "${var.task_queue_prefix}-index"
    retrieval = "${var.task_queue_prefix}-retrieval-g<n>"
  }
}
