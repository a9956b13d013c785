output "autoscaling_group_name" {
  description = "Name of the fleet's Auto Scaling group (scale it with `aws autoscaling set-desired-capacity`)."
  value       = aws_autoscaling_group.workers.name
}

output "queues" {
  description = "Queue kinds the fleet's workers poll."
  value       = var.queues
}

output "security_group_id" {
  description = "Security group of the workers (allow it on a self-hosted Temporal frontend)."
  value       = aws_security_group.workers.id
}
