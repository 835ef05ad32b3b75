# Base infrastructure of the dev (training) account, applied once by an administrator:
#
# - the registry-read role the deploy workflow assumes through GitHub's OIDC provider, for
#   both stages' GitHub environments: read the model package group and its artifacts, nothing
#   else;
# - read access to the model artifacts for the target accounts' deploy roles, so build.py's
#   server-side copy works (a KMS grant per role, and a bucket-policy statement);
# - ECR replication of the model images' repositories to the stage accounts;
# - the EventBridge rule on "SageMaker Model Package State Change" filtered to this project's
#   group and to Approved, whose target is the dispatch Lambda (lambdas/dispatch_deploy): it
#   starts the deploy workflow with the approved version. Events it cannot deliver, and
#   invocations that keep failing, land in an encrypted dead-letter queue with an alarm.
#
# The GitHub token is a Secrets Manager secret created here without a value: put it with
# `aws secretsmanager put-secret-value` (README), so it never enters Terraform state.

terraform {
  required_version = ">= 1.10"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
  # Partial: configured at `terraform init -backend-config=...` (README, "One-time setup").
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      "sagemaker:project-name" = var.project_name
      environment              = "dev"
    }
  }
}

# ----------------------------------------------------------------------------- variables

variable "region" {
  description = "AWS region of the registry."
  type        = string
}

variable "project_name" {
  description = "Project name: prefixes the names created here."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-32 lowercase letters, digits and hyphens."
  }
}

variable "model_package_group_name" {
  description = "The model package group whose approvals start deployments."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository holding .github/workflows/deploy.yml."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "github_ref" {
  description = "Branch the dispatched deploy workflow runs on."
  type        = string
  default     = "main"
}

variable "create_github_oidc_provider" {
  description = "Create GitHub's OIDC provider; false if the account already has one (it is one per account)."
  type        = bool
  default     = true
}

variable "model_artifacts_bucket" {
  description = "The dev bucket holding the registered models' artifacts."
  type        = string
}

variable "model_artifact_prefixes" {
  description = "Key prefixes of model_artifacts_bucket under which the packages' model artifacts lie (e.g. [\"training/\"]): the deploy side reads only these, not the training data beside them."
  type        = list(string)
  validation {
    condition     = length(var.model_artifact_prefixes) > 0 && alltrue([for p in var.model_artifact_prefixes : can(regex("^[^/*][^*]*/$", p))])
    error_message = "model_artifact_prefixes must list key prefixes such as \"training/\": not empty, no leading slash, no wildcard, ending in a slash."
  }
}

variable "model_artifacts_kms_key_arn" {
  description = "KMS key of the model artifacts, if they are SSE-KMS encrypted (the target deploy roles get a grant on it)."
  type        = string
  default     = null
}

variable "manage_model_artifacts_bucket_policy" {
  description = "Write the artifacts bucket's policy (TLS-only + the target deploy roles' read). false: merge the output model_artifacts_bucket_policy into the existing policy yourself."
  type        = bool
  default     = false
}

variable "target_deploy_role_arns" {
  description = "The deploy roles of the pre-prod and prod accounts (output deploy_role_arn of infra/target-account)."
  type        = list(string)
  validation {
    condition     = alltrue([for arn in var.target_deploy_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", arn))])
    error_message = "target_deploy_role_arns must be IAM role ARNs."
  }
}

variable "image_repository_prefixes" {
  description = "Name prefixes of this account's ECR repositories that hold the images models are served with: replicated to the stages, read by build.py. Default: the project name."
  type        = list(string)
  default     = null
  validation {
    condition     = var.image_repository_prefixes == null ? true : length(var.image_repository_prefixes) > 0 && alltrue([for p in var.image_repository_prefixes : can(regex("^[a-z0-9][a-z0-9._/-]*$", p))])
    error_message = "image_repository_prefixes must be ECR repository name prefixes (lower case)."
  }
}

variable "replicate_images" {
  description = "Replicate those repositories to each stage account (the accounts of target_deploy_role_arns) in this region, for models served by the team's own images (the sample's AWS image needs none). A registry has one replication configuration per region, which this replaces: leave false when the account's is managed elsewhere, and add a rule with these destinations there."
  type        = bool
  default     = false
}

variable "dispatch_lambda_zip" {
  description = "The dispatch Lambda's package, built by `make lambda-package` (python -m lambdas.package)."
  type        = string
  default     = "../../build/dispatch-deploy.zip"
}

variable "alarm_email" {
  description = "Optional address subscribed to the alarm topic."
  type        = string
  default     = null
}

variable "dispatch_reserved_concurrency" {
  description = "Concurrency reserved for (and capping) the dispatch Lambda. Accounts whose Lambda concurrency limit is 10 cannot reserve any: set -1 (unreserved)."
  type        = number
  default     = 2
}

variable "log_retention_days" {
  description = "Retention of the dispatch Lambda's logs."
  type        = number
  default     = 365
}

# ----------------------------------------------------------------------------- names

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account       = data.aws_caller_identity.current.account_id
  partition     = data.aws_partition.current.partition
  name          = "${var.project_name}-dev"
  function_name = "${var.project_name}-dispatch-deploy"
  # SageMaker may lower-case names in ARNs and IAM compares ARNs case-sensitively: both forms
  group_names        = distinct([var.model_package_group_name, lower(var.model_package_group_name)])
  group_arns         = [for g in local.group_names : "arn:${local.partition}:sagemaker:${var.region}:${local.account}:model-package-group/${g}"]
  packages_arns      = [for g in local.group_names : "arn:${local.partition}:sagemaker:${var.region}:${local.account}:model-package/${g}/*"]
  artifacts_arn      = "arn:${local.partition}:s3:::${var.model_artifacts_bucket}"
  artifact_arns      = [for prefix in var.model_artifact_prefixes : "${local.artifacts_arn}/${prefix}*"]
  image_prefixes     = coalesce(var.image_repository_prefixes, [var.project_name])
  image_repositories = [for p in local.image_prefixes : "arn:${local.partition}:ecr:${var.region}:${local.account}:repository/${p}*"]
  stage_accounts     = distinct([for arn in var.target_deploy_role_arns : split(":", arn)[4]])
  # the stages' deploy jobs and prod's plan job (deploy.yml plans prod before its gate); no
  # other environment: GitHub creates a referenced one without branch rules, open to any branch
  github_subject = [for environment in ["preprod", "prod", "prod-plan"] : "repo:${var.github_repository}:environment:${environment}"]
}

# ----------------------------------------------------------------------------- key

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:a key policy's "*" resource is the key itself; the account root administers it
  #checkov:skip=CKV_AWS_111:a key policy's "*" resource is the key itself; services are limited by conditions
  #checkov:skip=CKV_AWS_356:a key policy's "*" resource is the key itself
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "LogsEncryptTheLambdaLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/lambda/${local.function_name}"]
    }
  }
  statement {
    sid       = "AlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
  # EventBridge's KMS calls for encrypted queues carry no aws:SourceAccount, so a condition
  # on it would silently drop the dead letters; the queue's own policy limits who sends.
  statement {
    sid       = "EventBridgeSendsToTheEncryptedQueue"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "dispatch" {
  description         = "${local.name}: deploy dispatch token, dead letters, alarms and logs"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "dispatch" {
  name          = "alias/${local.name}-dispatch"
  target_key_id = aws_kms_key.dispatch.key_id
}

# ----------------------------------------------------------------------------- GitHub registry-read role

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

# ----------------------------------------------------------------------------- images
# A model served by the team's own image: ECR copies each push to a repository under the
# prefixes into every stage's registry (whose policy, from infra/target-account, lets this
# account replicate), and build.py names the stage's copy by digest. The stages then run
# their own copy: no later push, lifecycle rule or deletion here changes or removes it.

resource "aws_ecr_replication_configuration" "to_stages" {
  count = var.replicate_images ? 1 : 0
  replication_configuration {
    rule {
      dynamic "destination" {
        for_each = local.stage_accounts
        content {
          region      = var.region
          registry_id = destination.value
        }
      }
      dynamic "repository_filter" {
        for_each = local.image_prefixes
        content {
          filter      = repository_filter.value
          filter_type = "PREFIX_MATCH"
        }
      }
    }
  }
}

# ----------------------------------------------------------------------------- cross-account read

# build.py copies artifacts server side with the target account's credentials, so the target
# deploy roles read the dev bucket (their own policy allows it too) and decrypt its objects.
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
      identifiers = var.target_deploy_role_arns
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
  for_each          = var.model_artifacts_kms_key_arn == null ? {} : { for arn in var.target_deploy_role_arns : arn => arn }
  name              = "${var.project_name}-promotion-read"
  key_id            = var.model_artifacts_kms_key_arn
  grantee_principal = each.value
  operations        = ["Decrypt", "DescribeKey"]
}

# ----------------------------------------------------------------------------- dispatch on approval

resource "aws_secretsmanager_secret" "github_token" {
  name        = "${var.project_name}/github-dispatch-token"
  description = "Fine-grained GitHub token with actions:write on ${var.github_repository} only. The value is put outside Terraform."
  kms_key_id  = aws_kms_key.dispatch.arn
}

resource "aws_sqs_queue" "dispatch_dlq" {
  name                              = "${local.function_name}-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.dispatch.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_cloudwatch_event_rule" "approved" {
  name        = "${var.project_name}-model-approved"
  description = "A package of ${var.model_package_group_name} was approved: dispatch the deploy workflow."
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Package State Change"]
    detail = {
      ModelPackageGroupName = [var.model_package_group_name]
      ModelApprovalStatus   = ["Approved"]
    }
  })
}

resource "aws_sqs_queue_policy" "dispatch_dlq" {
  queue_url = aws_sqs_queue.dispatch_dlq.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.dispatch_dlq.arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.approved.arn } }
    }]
  })
}

resource "aws_cloudwatch_log_group" "dispatch" {
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.dispatch.arn
}

data "aws_iam_policy_document" "lambda_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "dispatch" {
  name               = local.function_name
  assume_role_policy = data.aws_iam_policy_document.lambda_trust.json
}

data "aws_iam_policy_document" "dispatch" {
  statement {
    sid       = "ReadTheToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.github_token.arn]
  }
  statement {
    sid       = "DecryptTheTokenAndEncryptDeadLetters"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.dispatch.arn]
  }
  statement {
    sid       = "KeepFailedEvents"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dispatch_dlq.arn]
  }
  statement {
    sid       = "WriteItsLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.dispatch.arn}:*"]
  }
  statement {
    sid       = "Trace"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # X-Ray has no resource types
  }
}

resource "aws_iam_role_policy" "dispatch" {
  name   = "dispatch-deploy"
  role   = aws_iam_role.dispatch.id
  policy = data.aws_iam_policy_document.dispatch.json
}

resource "aws_lambda_function" "dispatch" {
  function_name                  = local.function_name
  description                    = "Starts ${var.github_repository}'s deploy workflow when ${var.model_package_group_name} gets an approved version."
  role                           = aws_iam_role.dispatch.arn
  runtime                        = "python3.12"
  handler                        = "handler.handler"
  filename                       = var.dispatch_lambda_zip
  source_code_hash               = filebase64sha256(var.dispatch_lambda_zip)
  timeout                        = 30
  memory_size                    = 128
  reserved_concurrent_executions = var.dispatch_reserved_concurrency
  kms_key_arn                    = aws_kms_key.dispatch.arn

  environment {
    variables = {
      GITHUB_REPOSITORY        = var.github_repository
      GITHUB_REF               = var.github_ref
      GITHUB_WORKFLOW_FILE     = "deploy.yml"
      GITHUB_TOKEN_SECRET_ID   = aws_secretsmanager_secret.github_token.arn
      MODEL_PACKAGE_GROUP_NAME = var.model_package_group_name
    }
  }

  # EventBridge invokes asynchronously: after Lambda's own retries, the event goes here.
  dead_letter_config {
    target_arn = aws_sqs_queue.dispatch_dlq.arn
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_cloudwatch_log_group.dispatch, aws_iam_role_policy.dispatch]
}

resource "aws_lambda_function_event_invoke_config" "dispatch" {
  function_name                = aws_lambda_function.dispatch.function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 3600
}

resource "aws_lambda_permission" "events" {
  statement_id  = "AllowModelApprovedRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.dispatch.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.approved.arn
}

resource "aws_cloudwatch_event_target" "dispatch" {
  rule = aws_cloudwatch_event_rule.approved.name
  arn  = aws_lambda_function.dispatch.arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 10
  }

  # events EventBridge could not hand to the Lambda at all
  dead_letter_config {
    arn = aws_sqs_queue.dispatch_dlq.arn
  }
}

# ----------------------------------------------------------------------------- alarms

resource "aws_sns_topic" "alarms" {
  name              = "${local.function_name}-alarms"
  kms_master_key_id = aws_kms_key.dispatch.arn
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# Two alarms of the stage template's shape; with two, a for_each over a map would be longer
# than the blocks it replaces (the stage template folds its six into one resource).
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${local.function_name}-dead-letters"
  alarm_description   = "An approval did not start the deploy workflow; the event waits in ${aws_sqs_queue.dispatch_dlq.name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dispatch_dlq.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "dispatch_errors" {
  alarm_name          = "${local.function_name}-errors"
  alarm_description   = "The dispatch Lambda failed (it is retried; see its logs)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.dispatch.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

# ----------------------------------------------------------------------------- outputs

output "registry_read_role_arn" {
  description = "Store as the GitHub repository variable AWS_REGISTRY_READ_ROLE_ARN."
  value       = aws_iam_role.registry_read.arn
}

output "github_token_secret_arn" {
  description = "Put the token with: aws secretsmanager put-secret-value --secret-id <this> --secret-string file://token"
  value       = aws_secretsmanager_secret.github_token.arn
}

output "approved_rule_arn" {
  value = aws_cloudwatch_event_rule.approved.arn
}

output "dead_letter_queue_url" {
  value = aws_sqs_queue.dispatch_dlq.id
}

output "model_artifacts_bucket_policy" {
  description = "The statements to merge into the artifacts bucket policy when manage_model_artifacts_bucket_policy is false."
  value       = data.aws_iam_policy_document.model_artifacts_bucket.json
}
