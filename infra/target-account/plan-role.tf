# The plan before the gate: deploy.yml's plan job runs build.py --plan-only and
# `terraform plan -lock=false` in the GitHub environment "<env>-plan" (no reviewers), so
# the prod reviewer reads the plan before approving. Reads, and the shadow run (issue #33)
# only: it cannot change anything the deploy role can, so an ungated environment holding it
# gates nothing away. The shadow's writes are its own: the candidate model (<group>-<env>-c<N>)
# and its artifacts under shadow-models/, and runs of the shadow pipeline, whose role
# (shadow-role.tf) writes only under <output>/_shadow/.
resource "aws_iam_role" "plan" {
  count                = local.plan_role ? 1 : 0
  name                 = "${local.name}-plan"
  description          = "Assumed by ${var.github_repository}'s plan job (environment ${var.environment}-plan): reads only."
  assume_role_policy   = data.aws_iam_policy_document.github_trust["plan"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "plan" {
  #checkov:skip=CKV_AWS_356:sagemaker:ListModelPackages, sagemaker:ListModels, logs:DescribeLogGroups and application-autoscaling's Describe calls have no narrower resource
  statement {
    sid       = "ReadTheSsmContract"
    actions   = ["ssm:GetParametersByPath", "ssm:GetParameter", "ssm:GetParameters"]
    resources = ["arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}", "arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}/*"]
  }
  statement {
    # the deployment record and the stage's state; this role works in an environment
    # without reviewers, so it reads no model artifact but the candidate's it copies, and of
    # the batch data only what the shadow run compares (ReadWhatTheShadowCompares)
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
  # The shadow run (build.py --plan-only --shadow-candidate, then pipelines/shadow_run.py)
  statement {
    sid       = "CopyTheCandidatesArtifacts"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [local.shadow_models]
  }
  statement {
    sid       = "EncryptTheCandidatesArtifacts" # SSE-KMS with the stage key
    actions   = ["kms:GenerateDataKey"]
    resources = [aws_kms_key.stage.arn]
  }
  statement {
    # the copy is server side with this role's credentials (as the deploy role's), checked
    # by reading the copy's metadata back; the model artifacts only, not the training data
    sid     = "ReadTheCandidatesArtifacts"
    actions = ["s3:GetObject", "s3:GetObjectTagging"]
    resources = concat(
      [local.shadow_models],
      [for prefix in var.dev_model_artifact_prefixes : "arn:${local.partition}:s3:::${var.dev_artifacts_bucket}/${prefix}*"],
    )
  }
  dynamic "statement" {
    for_each = var.dev_kms_key_arn == null ? [] : [1]
    content {
      sid       = "DecryptTheCandidatesDevArtifacts"
      actions   = ["kms:Decrypt"]
      resources = [var.dev_kms_key_arn]
    }
  }
  statement {
    sid       = "FindTheStagesCandidates" # ListModels has no resource type
    actions   = ["sagemaker:ListModels"]
    resources = ["*"]
  }
  statement {
    # as the stage's models are: network-isolated, in the stage's subnets when it has some
    sid       = "CreateTheCandidateModel"
    actions   = ["sagemaker:CreateModel"]
    resources = local.candidate_models
    condition {
      test     = "Bool"
      variable = "sagemaker:NetworkIsolation"
      values   = ["true"]
    }
    dynamic "condition" {
      for_each = length(var.subnet_ids) > 0 ? [1] : []
      content {
        test     = "ForAllValues:StringEquals"
        variable = "sagemaker:VpcSubnets"
        values   = var.subnet_ids
      }
    }
  }
  statement {
    sid       = "TagAndDeleteTheCandidateModels" # superseded or rejected candidates go
    actions   = ["sagemaker:AddTags", "sagemaker:DeleteModel"]
    resources = local.candidate_models
  }
  statement {
    sid       = "PassTheShadowRoleToSageMaker" # the candidate model runs as the shadow role
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.shadow.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }
  statement {
    sid       = "StartTheShadowPipeline"
    actions   = ["sagemaker:StartPipelineExecution"]
    resources = [local.shadow_pipelines]
  }
  statement {
    sid       = "FollowAndStopShadowRuns"
    actions   = ["sagemaker:DescribePipelineExecution", "sagemaker:StopPipelineExecution", "sagemaker:ListPipelineExecutionSteps"]
    resources = [local.shadow_pipeline_executions]
  }
  statement {
    # what the comparison reads: the days' markers, the champion's rows in the predictions
    # table, each run's gate verdict (its Preprocess summaries) and the shadow's own outputs.
    # Predictions of production days: the job summary shows no ids unless shadow_show_ids.
    sid     = "ReadWhatTheShadowCompares"
    actions = ["s3:GetObject"]
    resources = [
      "${local.bucket_arn}/${local.output_prefix}_runs/*",
      "${local.bucket_arn}/${local.output_prefix}table/*",
      "${local.bucket_arn}/${local.output_prefix}*/preprocess/summary/*",
      local.shadow_outputs,
    ]
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
