resource "aws_cloudwatch_event_rule" "schedule" {
  name                = module.naming.rules.schedule
  description         = "Starts ${var.pipeline_name} with model ${var.model_name} on the day's input partition (through ${local.functions.schedule})."
  schedule_expression = var.schedule_expression
}

resource "aws_sqs_queue" "schedule_dlq" {
  name                              = module.naming.queues.dead_letters
  message_retention_seconds         = 1209600
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue_policy" "schedule_dlq" {
  queue_url = aws_sqs_queue.schedule_dlq.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.schedule_dlq.arn
      Condition = { ArnEquals = { "aws:SourceArn" = concat([aws_cloudwatch_event_rule.schedule.arn, aws_cloudwatch_event_rule.run_ended.arn], aws_cloudwatch_event_rule.upload[*].arn, aws_cloudwatch_event_rule.freshness[*].arn) } }
    }]
  })
}

# The schedule starts the function, not the pipeline: each night it scores the day's
# partition exactly once (lambdas/start_scheduled_run, stage_runtime/partitions.py), records
# a day without data as empty without a run, and looks again at the days before it.
locals {
  # earlier days each scheduled run looks at: retries their failed runs, completes their
  # markers, scores data that arrived late
  schedule_lookback_days = 2
}

module "schedule_function" {
  source             = "../modules/event-function"
  function_name      = local.functions.schedule
  description        = "Schedule of ${local.name}: starts the stage's pipeline on each day's input partition, exactly once."
  role_arn           = var.upload_starter_role_arn # the stage's run-starter role (infra/target-account)
  handler            = "handler.handler"
  package            = var.schedule_starter_zip
  timeout            = 120
  kms_key_arn        = local.kms_key_arn
  log_retention_days = 365 # what happened to each day, for a year
  environment = merge(local.model_quality_environment, {
    LABEL_LOOKBACK_DAYS = tostring(local.label_lookback_days)
    PIPELINE_NAME       = aws_sagemaker_pipeline.batch.pipeline_name
    PIPELINE_PARAMETERS = jsonencode({ for k, v in local.pipeline_parameters : k => v if !contains(["InputDataUrl", "OutputDataUrl"], k) })
    INPUT_DATA_URL      = var.input_data_url
    OUTPUT_DATA_URL     = var.output_data_url
    PARTITION_FORMAT    = var.partition_format
    KMS_KEY_ARN         = var.kms_key_arn == null ? "" : var.kms_key_arn
    LOOKBACK_DAYS       = tostring(local.schedule_lookback_days)
    SCORE_BY_HOURS      = tostring(var.score_by_hours)    # the freshness check (freshness.tf)
    INSTANCE_PRICES     = jsonencode(var.instance_prices) # a run's cost, when it completes a marker
  })
  # an invocation that still fails after Lambda's two retries lands with the rule's own
  # undeliverable events (alarmed)
  dead_letter_arn = aws_sqs_queue.schedule_dlq.arn
  rule            = { name = aws_cloudwatch_event_rule.schedule.name, arn = aws_cloudwatch_event_rule.schedule.arn, statement_id = "TheScheduleRuleInvokes" }
}
