# The artifact bucket: versioned, SSE-KMS with its own key (bucket key on, so KMS calls stay few), public access
# blocked, ACLs disabled, TLS-only, with lifecycle rules for training checkpoints and superseded index builds.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_111:This is a KMS key policy: its Resource "*" is the key itself, and the account root must administer it or the key becomes unmanageable.
  #checkov:skip=CKV_AWS_356:This is a KMS key policy: its Resource "*" is the key itself (AWS's documented default key policy).
  #checkov:skip=CKV_AWS_109:This is a KMS key policy: kms:* for the account root is AWS's default statement, which lets IAM policies (the worker roles') grant narrower use.
  # Without this statement nobody could manage the key; it also lets IAM policies (the worker roles') grant its use.
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"] # in a key policy "*" is this key
    principals {
      type        = "AWS"
      identifiers = concat([local.account_root], var.admin_role_arns)
    }
  }
}

resource "aws_kms_key" "artifacts" {
  description             = "tttnn artifact bucket ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "artifacts" {
  name          = "alias/tttnn-${var.name}"
  target_key_id = aws_kms_key.artifacts.key_id
}

resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV_AWS_18:Server access logs are left to the account's CloudTrail data events; tttnn writes millions of objects and access logs would double the request count.
  #checkov:skip=CKV_AWS_144:No cross-region replication: every artifact is reproducible from the corpus and its versioned settings (ingest, builds and runs are content-addressed).
  #checkov:skip=CKV2_AWS_62:No event notifications: the workflows in Temporal know when an artifact is written; nothing else listens.
  bucket        = var.name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.artifacts.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  # Lifecycle filters match key prefixes only (no wildcards), so `<eval root>/runs/*/checkpoints/` cannot be named
  # directly. Under evals/ (every eval root, runs/<run id>/) everything but checkpoints is written once and never replaced (documents are
  # conditional creates, parts and manifests are written once), while a checkpoint is rewritten every
  # eval.checkpointEvery neighbors and deleted once its document commits: the noncurrent versions there are the
  # checkpoints' old copies, and this rule removes them.
  rule {
    id     = "eval-run-checkpoints"
    status = "Enabled"
    filter {
      prefix = "${var.store_prefix}/evals/"
    }
    noncurrent_version_expiration {
      noncurrent_days = var.checkpoint_noncurrent_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  # Superseded builds: move to Intelligent-Tiering (a build nobody reads gets cheaper by itself); once an operator
  # deletes one (README), its objects, withdrawn manifests and replaced current.json pointers expire here.
  rule {
    id     = "superseded-index-builds"
    status = "Enabled"
    filter {
      prefix = "${var.store_prefix}/indexes/"
    }
    transition {
      days          = var.builds_tiering_days
      storage_class = "INTELLIGENT_TIERING"
    }
    noncurrent_version_expiration {
      noncurrent_days = var.superseded_build_noncurrent_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }

  # A killed worker can leave a multipart upload (objects over 16 MB) behind; its parts cost storage until aborted.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {
      prefix = ""
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 2
    }
  }

  depends_on = [aws_s3_bucket_versioning.artifacts]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOldTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.artifacts.arn, "${aws_s3_bucket.artifacts.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }

  # Objects are encrypted with this bucket's key only: an upload naming another key is refused.
  statement {
    sid       = "DenyOtherEncryptionKeys"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [aws_kms_key.artifacts.arn]
    }
  }
}

resource "aws_s3_bucket_policy" "artifacts" {
  bucket     = aws_s3_bucket.artifacts.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}
