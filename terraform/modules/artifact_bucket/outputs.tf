output "bucket" {
  description = "Name of the artifact bucket."
  value       = aws_s3_bucket.artifacts.bucket
}

output "bucket_arn" {
  description = "ARN of the artifact bucket."
  value       = aws_s3_bucket.artifacts.arn
}

output "kms_key_arn" {
  description = "ARN of the bucket's own KMS key (SSE-KMS): writers need kms:GenerateDataKey, readers kms:Decrypt on it."
  value       = aws_kms_key.artifacts.arn
}

output "store_url" {
  description = "s3:// URL of the store prefix: corpus, models, indexes and evaluations live under it."
  value       = "s3://${aws_s3_bucket.artifacts.bucket}/${var.store_prefix}"
}
