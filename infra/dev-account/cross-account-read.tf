# build.py copies artifacts server side with the target account's credentials, so the target
# deploy roles read the dev bucket (their own policy allows it too) and decrypt its objects;
# so do the plan roles, which copy a candidate's for its shadow run (#33).
locals {
  artifact_readers = distinct(concat(var.target_deploy_role_arns, var.target_plan_role_arns))
}

data "aws_iam_policy_document" "model_artifacts_bucket" {
  statement {
    sid       = "DenyPlainHttp"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.artifacts_arn, "${local.artifacts_arn}/*"]
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
    sid       = "TargetDeployRolesReadModelArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectTagging"]
    resources = local.artifact_arns
    principals {
      type        = "AWS"
      identifiers = local.artifact_readers
    }
  }
  statement {
    sid       = "TargetDeployRolesListModelArtifacts"
    actions   = ["s3:ListBucket"]
    resources = [local.artifacts_arn]
    principals {
      type        = "AWS"
      identifiers = var.target_deploy_role_arns
    }
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in var.model_artifact_prefixes : "${prefix}*"]
    }
  }
}

resource "aws_s3_bucket_policy" "model_artifacts" {
  count  = var.manage_model_artifacts_bucket_policy ? 1 : 0
  bucket = var.model_artifacts_bucket
  policy = data.aws_iam_policy_document.model_artifacts_bucket.json
}

# Grants add to the key's policy instead of replacing it.
resource "aws_kms_grant" "target_deploy_roles" {
  for_each          = var.model_artifacts_kms_key_arn == null ? {} : { for arn in local.artifact_readers : arn => arn }
  name              = "${var.project_name}-promotion-read"
  key_id            = var.model_artifacts_kms_key_arn
  grantee_principal = each.value
  operations        = ["Decrypt", "DescribeKey"]
}
