resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_github_oidc_provider ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1
  url   = "https://token.actions.githubusercontent.com"
}

data "aws_iam_policy_document" "registry_read_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    # only this repository's deploy jobs, which run in the preprod and prod environments
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = local.github_subject
    }
  }
  # and the target accounts' deploy roles, for build.py --source-role-arn from a stage's
  # credentials (e.g. a deployment run outside GitHub)
  statement {
    sid     = "TargetDeployRoles"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = var.target_deploy_role_arns
    }
  }
}

resource "aws_iam_role" "registry_read" {
  name                 = "${var.project_name}-registry-read"
  description          = "Read ${var.model_package_group_name} and its artifacts, for ${var.github_repository}'s deploy workflow."
  assume_role_policy   = data.aws_iam_policy_document.registry_read_trust.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "registry_read" {
  #checkov:skip=CKV_AWS_356:sagemaker:ListModelPackages and ecr:DescribeRegistry have no resource type
  statement {
    sid       = "ReadTheGroupAndItsPackages"
    actions   = ["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage", "sagemaker:ListTags"]
    resources = concat(local.group_arns, local.packages_arns)
  }
  statement {
    sid       = "ListPackages"
    actions   = ["sagemaker:ListModelPackages"]
    resources = ["*"] # ListModelPackages has no resource type
  }
  # the model artifacts only, not the training data that may share the bucket
  statement {
    sid       = "ReadTheArtifacts"
    actions   = ["s3:GetObject"]
    resources = local.artifact_arns
  }
  statement {
    sid       = "ListTheArtifactPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [local.artifacts_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in var.model_artifact_prefixes : "${prefix}*"]
    }
  }
  statement {
    sid       = "ResolveImageTags" # build.py pins each image by the digest its tag names
    actions   = ["ecr:DescribeImages"]
    resources = local.image_repositories
  }
  statement {
    sid       = "ReadTheReplicationRule" # build.py checks the stage gets the image at all
    actions   = ["ecr:DescribeRegistry"]
    resources = ["*"] # DescribeRegistry has no resource type
  }
  dynamic "statement" {
    for_each = var.model_artifacts_kms_key_arn == null ? [] : [var.model_artifacts_kms_key_arn]
    content {
      sid       = "DecryptTheArtifacts"
      actions   = ["kms:Decrypt", "kms:DescribeKey"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "registry_read" {
  name   = "registry-read"
  role   = aws_iam_role.registry_read.id
  policy = data.aws_iam_policy_document.registry_read.json
}
