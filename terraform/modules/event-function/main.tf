# One function of the stage and what invokes it: its log group (encrypted, retained), the
# function, and either an EventBridge rule's grant and target (retries, dead letters) or an
# SQS queue's event source mapping.

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:retention is the caller's choice: a year for the schedule's and the run outcome's (what happened to each day), 90 days for run on upload's
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:a rule's function has dead_letter_config (var.dead_letter_arn); a queue's function has its queue's redrive policy instead
  #checkov:skip=CKV_AWS_117:calls only AWS APIs (S3, SageMaker, SQS); a VPC would need endpoints for each
  #checkov:skip=CKV_AWS_115:reserved concurrency would fail in new accounts (unreserved must stay >= 10); one rule invokes it, or a FIFO group serialises it
  #checkov:skip=CKV_AWS_173:no secret in its environment (names and URIs); AWS encrypts it at rest
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile; the zip is built reproducibly by build.py
  function_name    = var.function_name
  description      = var.description
  role             = var.role_arn
  runtime          = "python3.12"
  handler          = var.handler
  filename         = var.package
  source_code_hash = filebase64sha256(var.package)
  timeout          = var.timeout
  memory_size      = 128
  depends_on       = [aws_cloudwatch_log_group.this]

  environment {
    variables = var.environment
  }

  dynamic "dead_letter_config" {
    for_each = var.dead_letter_arn == null ? [] : [var.dead_letter_arn]
    content {
      target_arn = dead_letter_config.value
    }
  }

  tracing_config {
    mode = "PassThrough"
  }
}

resource "aws_lambda_permission" "this" {
  count         = var.rule == null ? 0 : 1
  statement_id  = var.rule.statement_id
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = "events.amazonaws.com"
  source_arn    = var.rule.arn
}

resource "aws_cloudwatch_event_target" "this" {
  count = var.rule == null ? 0 : 1
  rule  = var.rule.name
  arn   = aws_lambda_function.this.arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 5
  }

  dead_letter_config {
    arn = var.dead_letter_arn
  }
}

resource "aws_lambda_event_source_mapping" "this" {
  count            = var.queue == null ? 0 : 1
  event_source_arn = var.queue.arn
  function_name    = aws_lambda_function.this.arn
  batch_size       = 1
}
