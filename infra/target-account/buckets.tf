resource "aws_s3_bucket" "artifacts" {
  bucket = "${local.name}-artifacts-${local.account}"
}

resource "aws_s3_bucket" "state" {
  #checkov:skip=CKV2_AWS_62:nothing reacts to Terraform state writes
  bucket = "${local.name}-tfstate-${local.account}"
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket   = each.value
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket   = each.value
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.stage.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket                  = each.value
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket   = each.value
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_iam_policy_document" "tls_only" {
  for_each = { artifacts = aws_s3_bucket.artifacts.arn, state = aws_s3_bucket.state.arn }
  statement {
    sid       = "DenyPlainHttp"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value, "${each.value}/*"]
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
}

resource "aws_s3_bucket_policy" "this" {
  for_each = { artifacts = aws_s3_bucket.artifacts.id, state = aws_s3_bucket.state.id }
  bucket   = each.value
  policy   = data.aws_iam_policy_document.tls_only[each.key].json
  # the public access block first, or S3 may judge the policy before it applies
  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    id     = "expire-old-outputs"
    status = "Enabled"
    filter {
      prefix = local.output_prefix
    }
    expiration {
      days = var.output_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }
  rule {
    id     = "tidy-versions-and-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    id     = "keep-recent-state-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 365
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.this]
}

# The stage template's optional run-on-upload trigger listens to these events.
resource "aws_s3_bucket_notification" "artifacts" {
  bucket      = aws_s3_bucket.artifacts.id
  eventbridge = true
}
