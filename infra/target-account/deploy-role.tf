# What build.py (promotion) and `terraform apply` of batch-config-template.tf do, on this
# stage's names only.
data "aws_iam_policy_document" "deploy" {
  #checkov:skip=CKV_AWS_356:sagemaker:ListModelPackages has no resource type; a new event source mapping has no ARN (limited by lambda:FunctionArn); scalable targets have no ARN before they exist (limited by application-autoscaling:service-namespace)
  statement {
    sid       = "ReadTheSsmContract"
    actions   = ["ssm:GetParametersByPath", "ssm:GetParameter", "ssm:GetParameters"]
    resources = ["arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}", "arn:${local.partition}:ssm:${var.region}:${local.account}:parameter${local.ssm_prefix}/*"]
  }
  statement {
    sid       = "AssumeTheDevRegistryReadRole" # build.py --source-role-arn (infra/dev-account)
    actions   = ["sts:AssumeRole"]
    resources = ["arn:${local.partition}:iam::${var.dev_account_id}:role/${var.project_name}-registry-read"]
  }
  statement {
    sid       = "CopyArtifactsAndUploadDefinitions"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:AbortMultipartUpload"]
    resources = [local.project_objects]
  }
  statement {
    # an approved deployment deletes its version's shadow candidate and the candidate's
    # artifact copies (promotion/shadow_candidate.py)
    sid       = "DeleteTheDeployedCandidatesArtifacts"
    actions   = ["s3:DeleteObject"]
    resources = [local.shadow_models]
  }
  statement {
    sid       = "ListTheProjectsPrefix"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
  }
  # the model artifacts only, not the training data that may share the bucket
  statement {
    sid       = "ReadDevArtifactsForServerSideCopy"
    actions   = ["s3:GetObject", "s3:GetObjectTagging"]
    resources = [for prefix in var.dev_model_artifact_prefixes : "arn:${local.partition}:s3:::${var.dev_artifacts_bucket}/${prefix}*"]
  }
  statement {
    sid       = "ListDevArtifactPrefixes"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.dev_artifacts_bucket}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for prefix in var.dev_model_artifact_prefixes : "${prefix}*"]
    }
  }
  statement {
    # the stage's state (deploy-stage.yml: key <project>/<env>/batch-inference.tfstate and its
    # lock file) only: not the state of infra/ an administrator may keep in the same bucket
    sid       = "TerraformState"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.state_bucket_arn}/${var.project_name}/${var.environment}/*"]
  }
  statement {
    sid       = "ListTheStagesState"
    actions   = ["s3:ListBucket"]
    resources = [local.state_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      # the S3 backend lists workspaces (prefix "env:/") before it reads the state
      values = ["${var.project_name}/${var.environment}/*", "env:/", "env:/*"]
    }
  }
  statement {
    sid       = "RemoveTheDeploymentRecordOnDestroy" # the stage template's aws_s3_object
    actions   = ["s3:DeleteObject"]
    resources = ["${local.bucket_arn}/${module.naming.deployments_prefix}*"]
  }
  statement {
    sid       = "UseTheStageKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [aws_kms_key.stage.arn]
  }
  dynamic "statement" {
    for_each = var.dev_kms_key_arn == null ? [] : [var.dev_kms_key_arn]
    content {
      sid       = "DecryptDevArtifacts"
      actions   = ["kms:Decrypt", "kms:DescribeKey"]
      resources = [statement.value]
    }
  }
  statement {
    sid = "PromoteIntoTheStageRegistry"
    actions = [
      "sagemaker:CreateModelPackageGroup", "sagemaker:DescribeModelPackageGroup",
      "sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage", "sagemaker:DeleteModelPackage",
      "sagemaker:UpdateModelPackage", "sagemaker:AddTags", "sagemaker:ListTags",
    ]
    resources = concat(local.stage_arns.group, local.stage_arns.packages)
  }
  statement {
    sid       = "ListTheRegistry"
    actions   = ["sagemaker:ListModelPackages"]
    resources = ["*"] # ListModelPackages has no resource type
  }
  statement {
    sid = "DeployTheStagesModelAndPipeline"
    actions = [
      "sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel",
      "sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:DescribePipeline", "sagemaker:DeletePipeline",
      "sagemaker:AddTags", "sagemaker:ListTags", "sagemaker:DeleteTags",
    ]
    resources = concat(local.stage_arns.models, [local.stage_arns.pipelines])
  }
  statement {
    # the stage's predictions table (terraform/stage/table.tf): Glue authorizes a table call
    # on the catalog, its database and the table, and a database's deletion on every table
    # and function in it (the stage's own database only); the provider reads the table's
    # partition indexes back, and tags the database with the default tags
    sid = "DeployThePredictionsTable"
    actions = [
      "glue:CreateDatabase", "glue:GetDatabase", "glue:UpdateDatabase", "glue:DeleteDatabase",
      "glue:CreateTable", "glue:GetTable", "glue:UpdateTable", "glue:DeleteTable", "glue:GetPartitionIndexes",
      "glue:GetTags", "glue:TagResource", "glue:UntagResource",
    ]
    resources = [
      "arn:${local.partition}:glue:${var.region}:${local.account}:catalog",
      "arn:${local.partition}:glue:${var.region}:${local.account}:database/${module.naming.predictions_table.database}",
      "arn:${local.partition}:glue:${var.region}:${local.account}:table/${module.naming.predictions_table.database}/*",
      "arn:${local.partition}:glue:${var.region}:${local.account}:userDefinedFunction/${module.naming.predictions_table.database}/*",
    ]
  }
  statement {
    # the optional real-time endpoint: its configurations, the endpoint, blue/green updates
    # (UpdateEndpoint), and what Application Auto Scaling checks its caller may do
    sid = "DeployTheStagesEndpoint"
    actions = [
      "sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig",
      "sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint",
      "sagemaker:UpdateEndpointWeightsAndCapacities", "sagemaker:AddTags", "sagemaker:ListTags", "sagemaker:DeleteTags",
    ]
    resources = concat(local.stage_arns.endpoints, local.stage_arns.endpoint_configs)
  }
  statement {
    # an endpoint configuration with the stage key: SageMaker makes a grant for the instances
    sid       = "EncryptTheEndpointsVolume"
    actions   = ["kms:CreateGrant"]
    resources = [aws_kms_key.stage.arn]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
  statement {
    # scalable targets have no ARN before they exist (and an opaque one after): the
    # condition keeps the role to SageMaker variants
    sid       = "ScaleTheStagesEndpoint"
    actions   = ["application-autoscaling:RegisterScalableTarget", "application-autoscaling:DeregisterScalableTarget", "application-autoscaling:PutScalingPolicy", "application-autoscaling:DeleteScalingPolicy"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "application-autoscaling:service-namespace"
      values   = ["sagemaker"]
    }
  }
  statement {
    # target tracking's own alarms, which Application Auto Scaling names after the variant
    sid       = "TheScalingPolicysAlarms"
    actions   = ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]
    resources = [for n in distinct([module.naming.endpoint, lower(module.naming.endpoint)]) : "${format(local.arn_prefix, "cloudwatch")}:alarm:TargetTracking-endpoint/${n}/*"]
  }
  statement {
    # build.py checks that the account's endpoint scaling role exists before an apply needs it
    sid       = "FindTheEndpointScalingRole"
    actions   = ["iam:GetRole"]
    resources = [local.endpoint_scaling_role]
  }
  statement {
    sid       = "ReadTheScaling" # no resource type
    actions   = ["application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies"]
    resources = ["*"]
  }
  statement {
    sid       = "TagTheScalableTargets" # the provider's default tags ride on the target
    actions   = ["application-autoscaling:ListTagsForResource", "application-autoscaling:TagResource", "application-autoscaling:UntagResource"]
    resources = [local.scalable_targets]
  }
  statement {
    sid       = "SmokeRunTheDeployedPipeline" # pipelines/smoke_run.py, after the apply
    actions   = ["sagemaker:StartPipelineExecution", "sagemaker:DescribePipelineExecution", "sagemaker:StopPipelineExecution"]
    resources = [local.stage_arns.pipelines] # <project>-<env>-*: its executions too
  }
  statement {
    # build.py pins the package's images of this registry by digest, and waits until the
    # replicated copies of the dev images are here (image metadata only)
    sid       = "FindTheStagesImages"
    actions   = ["ecr:DescribeImages"]
    resources = ["arn:${local.partition}:ecr:${var.region}:${local.account}:repository/*"]
  }
  statement {
    # the stage template's image pulls (aws_iam_role_policy.pull_images): on the execution
    # role only, and only while the boundary that caps any such policy is in place
    sid       = "GrantTheExecutionRoleItsImages"
    actions   = ["iam:PutRolePolicy", "iam:DeleteRolePolicy"]
    resources = [aws_iam_role.execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [aws_iam_policy.execution_boundary.arn]
    }
  }
  statement {
    sid       = "ReadTheExecutionRolesPolicies" # how the provider reads that policy back
    actions   = ["iam:GetRolePolicy"]
    resources = [aws_iam_role.execution.arn]
  }
  # One statement per PassRole grant, not a dynamic block: each names its role and the one
  # service it may go to, so a reviewer reads every grant whole, under its own Sid.
  statement {
    sid       = "PassTheExecutionRoleToSageMaker"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }
  statement {
    # the stage's shadow pipeline (terraform/stage/shadow.tf) runs as the shadow role
    sid       = "PassTheShadowRoleToSageMaker"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.shadow.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }
  statement {
    sid       = "PassTheUploadStarterRoleToLambda"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.upload_starter.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["lambda.amazonaws.com"]
    }
  }
  statement {
    sid = "ManageTheStagesFunctions" # schedule, upload, run outcome; their rules may invoke them
    actions = [
      "lambda:CreateFunction", "lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:UpdateFunctionCode",
      "lambda:UpdateFunctionConfiguration", "lambda:DeleteFunction", "lambda:ListVersionsByFunction",
      "lambda:GetFunctionCodeSigningConfig", "lambda:ListTags", "lambda:TagResource", "lambda:UntagResource",
      "lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy",
    ]
    resources = [local.stage_arns.functions]
  }
  statement {
    # a mapping to create has no ARN yet: Lambda authorises CreateEventSourceMapping on "*",
    # limited here by the function it connects
    sid       = "ConnectTheUploadQueueToTheFunction"
    actions   = ["lambda:CreateEventSourceMapping"]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "lambda:FunctionArn"
      values   = [local.stage_arns.functions]
    }
  }
  statement {
    sid       = "ChangeTheUploadEventSource"
    actions   = ["lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping"]
    resources = ["${format(local.arn_prefix, "lambda")}:event-source-mapping:*"]
    condition {
      test     = "ArnLike"
      variable = "lambda:FunctionArn"
      values   = [local.stage_arns.functions]
    }
  }
  statement {
    # reads and tags (the provider's default_tags ride on CreateEventSourceMapping) carry no
    # lambda:FunctionArn, which a condition would then never match
    sid       = "ReadAndTagTheEventSource"
    actions   = ["lambda:GetEventSourceMapping", "lambda:ListTags", "lambda:TagResource", "lambda:UntagResource"]
    resources = ["${format(local.arn_prefix, "lambda")}:event-source-mapping:*"]
  }
  statement {
    sid       = "FindLogGroups" # how the provider reads a log group back
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:*"]
  }
  statement {
    # the stage's batch-quality and prediction metric filters; IAM scopes these calls to the
    # log group, not to a filter name, so the role could also change other filters there
    sid       = "ManageTheQualityMetricFilters"
    actions   = ["logs:PutMetricFilter", "logs:DeleteMetricFilter", "logs:DescribeMetricFilters"]
    resources = flatten([for group in concat(local.job_log_groups, [local.schedule_log_group]) : ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}", "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*"]])
  }
  statement {
    sid       = "ManageTheFunctionsLogGroups"
    actions   = ["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:AssociateKmsKey", "logs:ListTagsForResource", "logs:TagResource", "logs:UntagResource"]
    resources = flatten([for group in local.function_log_groups : ["arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}", "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*"]])
  }
  # The stage's rules match SageMaker's and S3's events only and deliver only to the stage's
  # functions and upload queue (encrypted with the stage key, which no other account may use):
  # the role cannot route the account's event stream anywhere else.
  statement {
    # a schedule has no pattern (no events:source): ForAllValues holds for it
    sid       = "PutTheStagesRulesOnSageMakerAndS3Events"
    actions   = ["events:PutRule"]
    resources = [local.stage_arns.rules]
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "events:source"
      values   = ["aws.sagemaker", "aws.s3"]
    }
  }
  statement {
    sid       = "TargetTheStagesFunctionsAndUploadQueueOnly"
    actions   = ["events:PutTargets"]
    resources = [local.stage_arns.rules]
    condition {
      test     = "ForAllValues:ArnLike"
      variable = "events:TargetArn"
      values   = concat([local.stage_arns.functions], local.stage_arns.rule_queues)
    }
    condition {
      test     = "Null"
      variable = "events:TargetArn"
      values   = ["false"]
    }
  }
  statement {
    # the alarm email's subscription (alarm_email): neither action has a resource type in
    # IAM's action reference, so a statement on the topic does not cover them
    sid       = "ReadAndRemoveTheAlarmEmailSubscription"
    actions   = ["sns:GetSubscriptionAttributes", "sns:Unsubscribe"]
    resources = ["*"]
  }
  statement {
    # alarm notifications by email only, which the address's owner must confirm
    sid       = "SubscribeTheAlarmEmail"
    actions   = ["sns:Subscribe"]
    resources = [local.stage_arns.topics]
    condition {
      test     = "StringEquals"
      variable = "sns:Protocol"
      values   = ["email"]
    }
  }
  statement {
    sid = "ManageTheStagesScheduleQueuesTopicAlarmsDashboard"
    actions = [
      "events:DeleteRule", "events:DescribeRule", "events:RemoveTargets",
      "events:ListTargetsByRule", "events:ListTagsForResource", "events:TagResource", "events:UntagResource",
      "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:ListQueueTags",
      "sqs:TagQueue", "sqs:UntagQueue",
      "sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
      "sns:ListTagsForResource", "sns:TagResource", "sns:UntagResource",
      "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource",
      "cloudwatch:TagResource", "cloudwatch:UntagResource",
      "cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards",
    ]
    resources = [
      local.stage_arns.rules, local.stage_arns.queues, local.stage_arns.topics, local.stage_arns.alarms,
      local.stage_arns.dashboard,
    ]
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "deploy-${var.environment}"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}
