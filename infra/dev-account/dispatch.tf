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
