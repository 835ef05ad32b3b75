# The stage template's schedule (EventBridge) and upload trigger (a Lambda function) start the pipeline
# with these roles. They live here, not in the template, so the deploy role needs no IAM
# writes at all: a principal that may write a role's trust and policies can make that role
# trust itself and assume it (self-escalation). The deploy role may only pass them.

locals {
  stage_pipelines = "${format(local.arn_prefix, "sagemaker")}:pipeline/${local.name}-*"
  # Application Auto Scaling names a target by a generated id, not the endpoint's name
  scalable_targets = "${format(local.arn_prefix, "application-autoscaling")}:scalable-target/*"
  # the account's service-linked role endpoint auto scaling acts as (promotion/stage.py)
  endpoint_scaling_role = "arn:${local.partition}:iam::${local.account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
  # what the stage module creates for run on upload, its functions' log groups and dead letters
  upload_queue          = "${format(local.arn_prefix, "sqs")}:${module.naming.queues.uploads}"
  refused_uploads_queue = "${format(local.arn_prefix, "sqs")}:${module.naming.queues.refused_uploads}"
  upload_log_group      = module.naming.function_log_groups.upload
  schedule_log_group    = module.naming.function_log_groups.schedule
  schedule_dlq          = "${format(local.arn_prefix, "sqs")}:${module.naming.queues.dead_letters}"
  outcome_log_group     = module.naming.function_log_groups.outcome
  # the stage's functions' log groups: run on upload, schedule, run outcome
  function_log_groups = [local.upload_log_group, local.schedule_log_group, local.outcome_log_group]
  # the stage's pipelines' executions (DescribePipelineExecution's resource)
  stage_pipeline_executions = "${local.stage_pipelines}/execution/*"
  # the stage's jobs: the pipeline names them <base_job_prefix>-preprocess-..., -transform-...,
  # where base_job_prefix is resource_name(project, stage, limit=30) (promotion/stage_files.py):
  # "<name>-" while <name> has 30 characters at most, else its first 21 and a hash
  stage_job_prefix = length(local.name) <= 30 ? "${local.name}-" : substr(local.name, 0, 21)
  stage_jobs = [
    "${format(local.arn_prefix, "sagemaker")}:processing-job/${local.stage_job_prefix}*",
    "${format(local.arn_prefix, "sagemaker")}:transform-job/${local.stage_job_prefix}*",
  ]
}

data "aws_iam_policy_document" "service_trust" {
  for_each = { start_pipeline = "events.amazonaws.com", upload_starter = "lambda.amazonaws.com" }
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "start_pipeline" {
  name               = "${local.name}-start-pipeline"
  description        = "EventBridge starts ${local.name}'s batch-inference pipeline on its schedule."
  assume_role_policy = data.aws_iam_policy_document.service_trust["start_pipeline"].json
}

data "aws_iam_policy_document" "start_pipeline" {
  statement {
    sid       = "StartTheStagesPipeline"
    actions   = ["sagemaker:StartPipelineExecution"]
    resources = [local.stage_pipelines]
  }
}

resource "aws_iam_role_policy" "start_pipeline" {
  name   = "start-pipeline"
  role   = aws_iam_role.start_pipeline.id
  policy = data.aws_iam_policy_document.start_pipeline.json
}

# The role of the stage's functions that start runs and keep their markers: on the schedule
# (each day's partition), on upload (each uploaded object), and the run-outcome function.
resource "aws_iam_role" "upload_starter" {
  name               = "${local.name}-upload-starter"
  description        = "The schedule's and the run-on-upload functions start ${local.name}'s pipeline: each day's partition, each uploaded input object."
  assume_role_policy = data.aws_iam_policy_document.service_trust["upload_starter"].json
}

data "aws_iam_policy_document" "upload_starter" {
  # the schedule's function reads the first rows of a day's input, the upload function
  # checks each uploaded object: in the external_inputs too
  source_policy_documents = module.external_inputs.policy == null ? [] : [module.external_inputs.policy]
  statement {
    sid       = "ReadTheUploadQueue" # the Lambda event source polls with the function's role
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    resources = [local.upload_queue]
  }
  statement {
    sid       = "RefuseUploads"
    actions   = ["sqs:SendMessage"]
    resources = [local.refused_uploads_queue]
  }
  statement {
    sid       = "UseTheStageKeyForTheQueues"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.stage.arn]
  }
  statement {
    sid       = "CheckTheUploadedObject" # HeadObject needs s3:GetObject
    actions   = ["s3:GetObject"]
    resources = [local.project_objects]
  }
  statement {
    sid       = "FindObjectsSharingTheKey"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.project_name}/*"]
    }
  }
  statement {
    sid       = "CountRunsAndStartOne"
    actions   = ["sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"]
    resources = [local.stage_pipelines]
  }
  statement {
    # a marker names its execution; a run that ended is matched to its marker by its input
    sid       = "AskHowARunEndedAndWhatItScored"
    actions   = ["sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineParametersForExecution", "sagemaker:ListPipelineExecutionSteps"]
    resources = [local.stage_pipeline_executions]
  }
  statement {
    # a run's cost: each step's job, its instances and start and end (stage_runtime/run_cost.py)
    sid       = "ReadWhatARunsJobsRanOn"
    actions   = ["sagemaker:DescribeProcessingJob", "sagemaker:DescribeTransformJob"]
    resources = local.stage_jobs
  }
  statement {
    # <output>/_runs/<partition>.json and _runs/uploads/<key>.json under the stage's default
    # output (as the execution role's WriteRunOutputs); reading a run's summaries for its
    # rows is CheckTheUploadedObject's s3:GetObject on the project's objects
    sid       = "WriteTheRunMarkers"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/${local.output_prefix}_runs/*"]
  }
  statement {
    sid       = "FailedSchedulesToTheDeadLetterQueue" # the schedule function's DLQ
    actions   = ["sqs:SendMessage"]
    resources = [local.schedule_dlq]
  }
  statement {
    sid       = "WriteItsLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for group in local.function_log_groups : "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${group}:*"]
  }
}

resource "aws_iam_role_policy" "upload_starter" {
  name   = "read-uploads-start-pipeline"
  role   = aws_iam_role.upload_starter.id
  policy = data.aws_iam_policy_document.upload_starter.json
}
