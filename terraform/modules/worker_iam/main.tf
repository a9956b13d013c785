# One role per worker kind, each allowed exactly what its queue's activities read and write (workers/worker.ts):
#   gpu       embedShard, embedQueries, evaluateDocument
#   index     buildShardIndex, verifyShard
#   retrieval searchShards
#   cpu       every workflow; ingestFile, planIndexBuild, writeIndexManifest, withdrawIndexManifest,
#             promoteIndexBuild, planRetrieval, mergeNeighbors, planEvaluation, selectSiftNeighbors,
#             compactResults, writeEvaluationManifest
# Layout (core/index/build-layout.ts, core/eval/run-layout.ts): <store>/corpus/<name>/<version>/...,
# <store>/models/<name>/<version>/..., <store>/indexes/<name>/{current.json,builds/<id>/{plan.json,embeddings/,index/,
# manifest.json}}, <store>/evals[/<name>]/runs/<run id>/{run.json,plan.json,selection.parquet,queries.parquet,
# retrieval/,random/,sift/,documents/,checkpoints/,results/,manifest.json}. IAM's `*` matches across `/`.
# Credentials come from the instance profile (s3.credentials=aws): no access keys exist anywhere.

locals {
  store    = "${var.bucket_arn}/${var.store_prefix}"
  prefix   = var.store_prefix
  releases = "${local.store}/releases/*"
}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    sid     = "Ec2AssumesTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# ---------------------------------------------------------------------------------------------------------- gpu
data "aws_iam_policy_document" "gpu" {
  statement {
    sid       = "ListStore"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.prefix}/corpus/*", "${local.prefix}/models/*", "${local.prefix}/indexes/*", "${local.prefix}/evals/*"]
    }
  }

  statement {
    sid     = "ReadCorpusModelsIndexesRunsRelease"
    actions = ["s3:GetObject"]
    resources = [
      "${local.store}/corpus/*",
      "${local.store}/models/*",
      "${local.store}/indexes/*",
      "${local.store}/evals/*",
      local.releases,
    ]
  }

  statement {
    sid     = "WriteEmbeddingsAndResults"
    actions = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [
      "${local.store}/indexes/*/builds/*/embeddings/*",
      "${local.store}/evals/*runs/*/queries.parquet",
      "${local.store}/evals/*runs/*/documents/*",
      "${local.store}/evals/*runs/*/checkpoints/*",
    ]
  }

  statement {
    sid       = "DeleteCommittedCheckpoints"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.store}/evals/*runs/*/checkpoints/*"]
  }

  statement {
    sid       = "UseBucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  dynamic "statement" {
    for_each = length(var.temporal_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadTemporalCertificates"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.temporal_secret_arns
    }
  }
}

# -------------------------------------------------------------------------------------------------------- index
data "aws_iam_policy_document" "index" {
  statement {
    sid       = "ListBuilds"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.prefix}/indexes/*"]
    }
  }

  statement {
    sid       = "ReadBuildsRelease"
    actions   = ["s3:GetObject"]
    resources = ["${local.store}/indexes/*/builds/*", local.releases]
  }

  statement {
    sid       = "WriteShardIndexes"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${local.store}/indexes/*/builds/*/index/*"]
  }

  # verifyShard deletes a damaged shard's objects and records so that the build redoes them.
  statement {
    sid       = "DeleteDamagedShardObjects"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.store}/indexes/*/builds/*/embeddings/*", "${local.store}/indexes/*/builds/*/index/*"]
  }

  statement {
    sid       = "UseBucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  dynamic "statement" {
    for_each = length(var.temporal_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadTemporalCertificates"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.temporal_secret_arns
    }
  }
}

# ---------------------------------------------------------------------------------------------------- retrieval
data "aws_iam_policy_document" "retrieval" {
  statement {
    sid       = "ListIndexesRuns"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.prefix}/indexes/*", "${local.prefix}/evals/*"]
    }
  }

  statement {
    sid     = "ReadIndexesQueriesRelease"
    actions = ["s3:GetObject"]
    resources = [
      "${local.store}/indexes/*",
      "${local.store}/evals/*runs/*/queries.parquet",
      "${local.store}/evals/*runs/*/retrieval/*",
      local.releases,
    ]
  }

  statement {
    sid       = "WriteGroupCandidates"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${local.store}/evals/*runs/*/retrieval/groups/*"]
  }

  statement {
    sid       = "UseBucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  dynamic "statement" {
    for_each = length(var.temporal_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadTemporalCertificates"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.temporal_secret_arns
    }
  }
}

# ---------------------------------------------------------------------------------------------------------- cpu
data "aws_iam_policy_document" "cpu" {
  statement {
    sid       = "ListStoreAndInput"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values = concat(
        ["${local.prefix}/samples/*", "${local.prefix}/corpus/*", "${local.prefix}/models/*", "${local.prefix}/indexes/*", "${local.prefix}/evals/*"],
        [for p in var.input_prefixes : "${p}*"],
      )
    }
  }

  statement {
    sid     = "ReadInputStoreRelease"
    actions = ["s3:GetObject"]
    resources = concat(
      [
        "${local.store}/samples/*",
        "${local.store}/corpus/*",
        "${local.store}/models/*",
        "${local.store}/indexes/*",
        "${local.store}/evals/*",
        local.releases,
      ],
      [for p in var.input_prefixes : "${var.bucket_arn}/${p}*"],
    )
  }

  statement {
    sid     = "WriteCorpusPlansManifestsRuns"
    actions = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [
      "${local.store}/corpus/*",
      "${local.store}/indexes/*/current.json",
      "${local.store}/indexes/*/builds/*/plan.json",
      "${local.store}/indexes/*/builds/*/manifest.json",
      "${local.store}/evals/*runs/*/run.json",
      "${local.store}/evals/*runs/*/plan.json",
      "${local.store}/evals/*runs/*/selection.parquet",
      "${local.store}/evals/*runs/*/random/*",
      "${local.store}/evals/*runs/*/retrieval/neighbors.parquet",
      "${local.store}/evals/*runs/*/retrieval/pool.parquet",
      "${local.store}/evals/*runs/*/sift/*",
      "${local.store}/evals/*runs/*/retrieval/manifest.json",
      "${local.store}/evals/*runs/*/results/*",
      "${local.store}/evals/*runs/*/manifest.json",
    ]
  }

  # withdrawIndexManifest: a build found damaged at verification loses its manifest until it is rebuilt.
  statement {
    sid       = "WithdrawBuildManifests"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.store}/indexes/*/builds/*/manifest.json"]
  }

  statement {
    sid       = "UseBucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  dynamic "statement" {
    for_each = length(var.temporal_secret_arns) > 0 ? [1] : []
    content {
      sid       = "ReadTemporalCertificates"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = var.temporal_secret_arns
    }
  }
}

locals {
  policies = {
    gpu       = data.aws_iam_policy_document.gpu.json
    index     = data.aws_iam_policy_document.index.json
    retrieval = data.aws_iam_policy_document.retrieval.json
    cpu       = data.aws_iam_policy_document.cpu.json
  }
}

resource "aws_iam_role" "worker" {
  for_each             = local.policies
  name                 = "${var.name_prefix}-${each.key}"
  description          = "tttnn ${each.key}-queue workers"
  assume_role_policy   = data.aws_iam_policy_document.assume_ec2.json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy" "worker" {
  for_each = local.policies
  name     = "tttnn-${each.key}-worker"
  role     = aws_iam_role.worker[each.key].id
  policy   = each.value
}

resource "aws_iam_instance_profile" "worker" {
  for_each = local.policies
  name     = "${var.name_prefix}-${each.key}"
  role     = aws_iam_role.worker[each.key].name
  tags     = var.tags
}
