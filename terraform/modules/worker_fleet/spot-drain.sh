#!/bin/bash
# tttnn-drain: turns the two-minute spot interruption notice, and an Auto Scaling termination (scale-in, capacity
# rebalancing), into a SIGTERM for every tttnn worker on this instance, so that each drains: activities in flight get
# worker.shutdownGraceSeconds, then are handed back to Temporal and retried on another worker.
# Polls IMDSv2 every 5 s: meta-data/spot/instance-action (404 until a notice) and
# meta-data/autoscaling/target-lifecycle-state (served while the group has a lifecycle hook; "Terminated" once the
# group has decided to terminate this instance and holds it in Terminating:Wait).
set -uo pipefail

imds=http://169.254.169.254/latest
interval=5

token() {
  curl -sS -f -X PUT "$imds/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300'
}

metadata() {
  curl -s -f -H "X-aws-ec2-metadata-token: $1" "$imds/meta-data/$2"
}

drain() {
  echo "tttnn-drain: $1: stopping the workers (SIGTERM, they drain)"
  systemctl stop 'tttnn-worker@*.service'
  echo 'tttnn-drain: workers stopped'
}

while true; do
  if t=$(token); then
    if action=$(metadata "$t" spot/instance-action); then
      drain "spot interruption notice $action"
      exit 0
    fi
    if state=$(metadata "$t" autoscaling/target-lifecycle-state) && [ "$state" = Terminated ]; then
      drain 'Auto Scaling terminates this instance'
      exit 0
    fi
  fi
  sleep "$interval"
done
