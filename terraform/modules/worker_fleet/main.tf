# One worker fleet: a launch template (IMDSv2 only, encrypted gp3 root, no public IP, the worker kind's instance
# profile) and an Auto Scaling group with a spot/on-demand mix, capacity rebalancing, and a termination lifecycle
# hook that gives the workers time to drain.
#
# Draining, chosen: a small script on each instance (spot-drain.sh, systemd unit tttnn-drain) polls IMDSv2 every
# 5 s for meta-data/spot/instance-action (the two-minute spot notice) and meta-data/autoscaling/target-lifecycle-state
# (Terminated once the group terminates the instance: scale-in, capacity rebalancing, instance refresh), and stops
# the worker units: systemd sends SIGTERM, `tttnn worker` drains (worker.shutdownGraceSeconds), and what is still
# running is handed back to Temporal and retried elsewhere. The alternative, an EventBridge rule + Lambda/SSM
# command per notice, needs more moving parts and more IAM (ssm:SendCommand on the fleet) for the same SIGTERM; the
# instance-local poller needs no permissions at all. The lifecycle hook's default result is CONTINUE, so an
# instance that drained early still waits out the hook (at most shutdown_grace + 30 s).

data "aws_ssm_parameter" "ami" {
  name = var.ami_ssm_parameter
}

locals {
  gpu = var.kind == "gpu"
  # Spot gives two minutes; leave the stop some seconds beyond the grace, well inside them.
  stop_timeout_seconds = var.user_data.shutdown_grace_seconds + 15
  rendered = templatefile("${path.module}/user-data.sh.tftpl", merge(
    { for k, v in var.user_data : k => v if k != "extra_env" },
    {
      gpu                  = local.gpu ? "true" : "false"
      queues               = var.queues
      processes            = var.processes_per_instance
      stop_timeout_seconds = local.stop_timeout_seconds
      drain_script         = trimspace(file("${path.module}/spot-drain.sh"))
      extra_env            = join("\n", [for k in sort(keys(var.user_data.extra_env)) : "${k}=${var.user_data.extra_env[k]}"])
    },
  ))
}

resource "aws_security_group" "workers" {
  #checkov:skip=CKV_AWS_382:Workers fetch Node and npm packages from the public npm registry, PyPI wheels and the Go proxy at boot, and reach S3 and Secrets Manager through their public HTTPS endpoints when the VPC has no endpoints; egress is limited to HTTPS and the Temporal port.
  name        = "${var.name}-workers"
  description = "tttnn ${var.kind} workers: no inbound traffic; HTTPS and Temporal gRPC out"
  vpc_id      = var.vpc_id
  tags        = var.tags

  egress {
    description = "HTTPS: S3, Secrets Manager, npm registry, PyPI, Go module proxy"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description = "Temporal frontend gRPC"
    from_port   = var.temporal_port
    to_port     = var.temporal_port
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_launch_template" "workers" {
  name_prefix            = "${var.name}-"
  description            = "tttnn ${var.kind} workers (queues ${var.queues})"
  image_id               = data.aws_ssm_parameter.ami.value
  update_default_version = true
  user_data              = base64encode(local.rendered)
  ebs_optimized          = true
  tags                   = var.tags

  iam_instance_profile {
    name = var.instance_profile_name
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  network_interfaces {
    associate_public_ip_address = false
    security_groups             = [aws_security_group.workers.id]
    delete_on_termination       = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.root_volume_gb
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = var.name, "tttnn:kind" = var.kind, "tttnn:queues" = var.queues })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = var.name })
  }
}

resource "aws_autoscaling_group" "workers" {
  name                      = var.name
  min_size                  = var.min_size
  max_size                  = var.max_size
  desired_capacity          = var.desired_capacity
  vpc_zone_identifier       = var.subnet_ids
  capacity_rebalance        = true
  health_check_type         = "EC2"
  wait_for_capacity_timeout = "0"

  mixed_instances_policy {
    instances_distribution {
      on_demand_base_capacity                  = var.on_demand_base_capacity
      on_demand_percentage_above_base_capacity = var.on_demand_percentage
      on_demand_allocation_strategy            = "prioritized"
      spot_allocation_strategy                 = "price-capacity-optimized"
    }
    launch_template {
      launch_template_specification {
        launch_template_id = aws_launch_template.workers.id
        version            = "$Latest"
      }
      dynamic "override" {
        for_each = var.instance_types
        content {
          instance_type = override.value
        }
      }
    }
  }

  initial_lifecycle_hook {
    name                 = "drain-workers"
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    default_result       = "CONTINUE"
    heartbeat_timeout    = var.user_data.shutdown_grace_seconds + 30
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}
