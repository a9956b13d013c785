output "role_arns" {
  description = "Role ARN per worker kind (gpu, index, retrieval, cpu)."
  value       = { for kind, role in aws_iam_role.worker : kind => role.arn }
}

output "instance_profile_names" {
  description = "Instance profile name per worker kind, for the launch templates."
  value       = { for kind, profile in aws_iam_instance_profile.worker : kind => profile.name }
}
