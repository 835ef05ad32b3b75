# The plan before the gate: deploy.yml's plan job runs build.py --plan-only and
# `terraform plan -lock=false` in the GitHub environment "<env>-plan" (no reviewers), so
# the prod reviewer reads the plan before approving. Reads only: it cannot change anything
# the deploy role can, so an ungated environment holding it gates nothing away.
resource "aws_iam_role" "plan" {
  count                = local.plan_role ? 1 : 0
  name                 = "${local.name}-plan"
  description          = "Assumed by ${var.github_repository}'s plan job (environment ${var.environment}-plan): reads only."
  assume_role_policy   = data.aws_iam_policy_document.github_trust["plan"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "plan" {
  #checkov:skip=CKV_AWS_356:sagemaker:ListModelPackages, logs:DescribeLogGroups and application-autoscaling's Describe calls have no narrower resource
  statement {
    sid       = "ReadTheSsmContract"
    actions   = ["ssm:GetParametersByPath", "ssm:GetParameter", "ssm:GetParameters"]
    resources = ["arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}", "arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}/*"]
  }
  statement {
    # the deployment record and the stage's state only: this role works in an environment
    # without reviewers, so it reads no model artifact and no batch data
    sid       = "ReadTheDeploymentRecordAndState"
    actions   = ["s3:GetObject", "s3:GetObjectTagging"]
    resources = ["${local.bucket_arn}/${module.naming.deployments_prefix}*", "${local.state_bucket_arn}/${var.project_name}/${var.environment}/*"]
  }
  statement {
    sid       = "ListTheBuckets"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn, local.state_bucket_arn]
  }
  statement {
    sid       = "DecryptWithTheStageKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey"]
    resources = [aws_kms_key.stage.arn]
  }
  statement {
    sid       = "ReadTheRegistry"
    actions   = ["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage", "sagemaker:ListTags"]
    resources = concat(local.stage_arns.group, local.stage_arns.packages)
  }
  statement {
    sid       = "ListTheRegistryAndLogGroups"
    actions   = ["sagemaker:ListModelPackages", "logs:DescribeLogGroups"]
    resources = ["*"]
  }
  statement {
    sid = "RefreshTheStagesResources" # what `terraform plan` reads back
    actions = [
      "sagemaker:DescribeModel", "sagemaker:DescribePipeline", "sagemaker:ListTags",
      "events:DescribeRule", "events:ListTargetsByRule", "events:ListTagsForResource",
      "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueueTags",
      "sns:GetTopicAttributes", "sns:ListTagsForResource",
      "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource", "cloudwatch:GetDashboard",
      "lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:ListVersionsByFunction",
      "lambda:GetFunctionCodeSigningConfig", "lambda:ListTags", "lambda:GetPolicy",
      "logs:ListTagsForResource", "logs:ListTagsLogGroup",
    ]
    resources = concat(local.stage_arns.models, [
      local.stage_arns.pipelines, local.stage_arns.rules, local.stage_arns.queues, local.stage_arns.topics,
      local.stage_arns.alarms, local.stage_arns.dashboard, local.stage_arns.functions,
      ], flatten([for group in local.function_log_groups : [
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}",
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*",
    ]]))
  }
  statement {
    sid       = "RefreshTheMetricFilters"
    actions   = ["logs:DescribeMetricFilters"]
    resources = [for group in concat(local.job_log_groups, [local.schedule_log_group]) : "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*"]
  }
  statement {
    sid       = "RefreshTheEndpoint"
    actions   = ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:ListTags"]
    resources = concat(local.stage_arns.endpoints, local.stage_arns.endpoint_configs)
  }
  statement {
    sid       = "RefreshTheEndpointScaling" # no resource type
    actions   = ["application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies"]
    resources = ["*"]
  }
  statement {
    sid       = "FindTheEndpointScalingRole" # build.py --plan-only checks it too
    actions   = ["iam:GetRole"]
    resources = [local.endpoint_scaling_role]
  }
  statement {
    sid       = "RefreshTheScalableTargetsTags"
    actions   = ["application-autoscaling:ListTagsForResource"]
    resources = [local.scalable_targets]
  }
  statement {
    # no resource type (IAM's action reference): a statement on the topic does not cover it
    sid       = "RefreshTheAlarmEmailSubscription"
    actions   = ["sns:GetSubscriptionAttributes"]
    resources = ["*"]
  }
  statement {
    sid       = "RefreshTheImagePullsAndFindImages"
    actions   = ["iam:GetRolePolicy", "ecr:DescribeImages"]
    resources = [aws_iam_role.execution.arn, "arn:${local.partition}:ecr:${var.region}:${local.account}:repository/*"]
  }
  statement {
    sid       = "RefreshTheUploadEventSource"
    actions   = ["lambda:GetEventSourceMapping", "lambda:ListTags"]
    resources = ["${format(local.arn_prefix, "lambda")}:event-source-mapping:*"]
  }
}

resource "aws_iam_role_policy" "plan" {
  count  = local.plan_role ? 1 : 0
  name   = "plan-${var.environment}"
  role   = aws_iam_role.plan[0].id
  policy = data.aws_iam_policy_document.plan.json
}
