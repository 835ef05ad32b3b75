# Freshness: is each day scored by its deadline (score_by_hours after its end, UTC), and does
# the schedule still run at all? No poller: at the deadline a second rule invokes the schedule's
# own function with {"check": "freshness", "event": <the Scheduled Event>}, which reads the due
# day's marker and prints one line (stage_runtime/freshness.py); the schedule's runs print a
# heartbeat line. Metric filters on the function's log group turn both into metrics, and the
# alarms below (merged into local.alarms, alarms.tf) watch them. local_mode/freshness.py
# declares the same filters and alarms for local mode; tests/test_terraform.py holds the two
# equal.
locals {
  freshness_namespace = "BatchInference/Freshness"
  # each reason a day is late: its metric, from the line's 0/1 field, and the notification's
  # first step (docs/operations.md#alarms-what-each-means-and-what-to-do has the rest)
  freshness_reasons = {
    input_never_arrived = {
      metric = "LateInputNeverArrived"
      alarm  = "A day of ${var.pipeline_name} was not scored by its deadline (${var.score_by_hours} h after the day's end, UTC): its input never arrived (marker Empty: no data under its partition of ${var.input_data_url} at the schedule's last look). First step: ask the data's producer for the day; once it lands, the schedule scores it within ${local.schedule_lookback_days} days, or backfill it: python -m pipelines.run_pipeline --stage ${var.environment} --date <day>."
    }
    run_failed = {
      metric = "LateRunFailed"
      alarm  = "A day of ${var.pipeline_name} was not scored by its deadline (${var.score_by_hours} h after the day's end, UTC): its run failed or was stopped. First step: read failure_reason in the day's marker (${var.output_data_url}/_runs/<partition>.json) and the execution in SageMaker; the next schedule retries the day, or backfill it with --wait once fixed."
    }
    still_running = {
      metric = "LateStillRunning"
      alarm  = "A day of ${var.pipeline_name} was not scored by its deadline (${var.score_by_hours} h after the day's end, UTC): its run is still executing. First step: open the execution named in the day's marker (${var.output_data_url}/_runs/<partition>.json) in SageMaker: a step waiting for capacity, or a slow one (docs/capacity.md sizes the instances)."
    }
    schedule_did_not_fire = {
      metric = "LateScheduleDidNotFire"
      alarm  = "A day of ${var.pipeline_name} was not scored by its deadline (${var.score_by_hours} h after the day's end, UTC): it has no marker, so the schedule never looked at it. First step: check that the rule ${aws_cloudwatch_event_rule.schedule.name} is ENABLED and fires before the deadline, and the function ${local.functions.schedule}'s log and dead-letter queue; then backfill the day."
    }
  }
  freshness_metrics = merge(
    { for key, reason in local.freshness_reasons : reason.metric => { event = "freshness", field = key } },
    { ScheduleRuns = { event = "schedule-ran", field = "runs" } },
  )
  # The dead-man's switch's period: the schedule's interval (a rate, or a cron that fires once a
  # day; any other cron is taken as weekly) plus slack (at most an hour), so a rule that fires a
  # little late never looks silent; at most 7 days, CloudWatch's longest evaluation range.
  schedule_rate     = try(regex("^rate\\(([0-9]+) (minute|hour|day)s?\\)$", var.schedule_expression), null)
  daily_cron        = can(regex("^cron\\([0-9]{1,2} [0-9]{1,2} [*?] \\* [*?] \\*\\)$", var.schedule_expression))
  schedule_interval = try(tonumber(local.schedule_rate[0]) * { minute = 60, hour = 3600, day = 86400 }[local.schedule_rate[1]], local.daily_cron ? 86400 : 604800)
  heartbeat_period  = min(local.schedule_interval + min(local.schedule_interval, 3600), 604800)

  # every alarm here sets the same fields (a conditional's two maps must have one type); the
  # metric names are the filters' (not referenced: the filters exist only when this is used)
  freshness_alarms = merge(
    {
      for key, reason in local.freshness_reasons : "late_${key}" => {
        description        = reason.alarm
        namespace          = local.freshness_namespace
        metric             = reason.metric # aws_cloudwatch_log_metric_filter.freshness's
        dimension          = "PipelineName"
        watched            = aws_sagemaker_pipeline.batch.pipeline_name
        statistic          = "Maximum"
        threshold          = 0
        notify_ok          = false
        period             = 300
        comparison         = "GreaterThanThreshold"
        treat_missing_data = "notBreaching"
      }
    },
    {
      schedule_silent = {
        description        = "The schedule of ${var.pipeline_name} has not run for ${local.heartbeat_period / 60} minutes (its period, ${var.schedule_expression}, and slack): no day is being scored. First step: check that the rule ${aws_cloudwatch_event_rule.schedule.name} is ENABLED and still targets ${local.functions.schedule}, and that function's log and errors (a new stage is in this alarm until its schedule first runs)."
        namespace          = local.freshness_namespace
        metric             = "ScheduleRuns"
        dimension          = "PipelineName"
        watched            = aws_sagemaker_pipeline.batch.pipeline_name
        statistic          = "Sum"
        threshold          = 1
        notify_ok          = true
        period             = local.heartbeat_period
        comparison         = "LessThanThreshold"
        treat_missing_data = "breaching" # silence is the failure this alarm exists for
      }
      freshness_not_checked = {
        description        = "The deadline rule of ${var.pipeline_name} could not invoke ${local.functions.schedule}: days are not being checked for freshness. First step: read the rule ${module.naming.rules.freshness}'s failed invocations and the dead-letter queue."
        namespace          = "AWS/Events"
        metric             = "FailedInvocations"
        dimension          = "RuleName"
        watched            = module.naming.rules.freshness
        statistic          = "Sum"
        threshold          = 0
        notify_ok          = false
        period             = 300
        comparison         = "GreaterThanThreshold"
        treat_missing_data = "notBreaching"
      }
    },
  )
}

resource "aws_cloudwatch_event_rule" "freshness" {
  count               = var.freshness_alarms ? 1 : 0
  name                = module.naming.rules.freshness
  description         = "At each day's deadline (${var.score_by_hours} h after its end, UTC), ${local.functions.schedule} checks that ${var.pipeline_name} scored it."
  schedule_expression = "cron(0 ${var.score_by_hours % 24} * * ? *)"
}

resource "aws_cloudwatch_event_target" "freshness" {
  count = var.freshness_alarms ? 1 : 0
  rule  = aws_cloudwatch_event_rule.freshness[0].name
  arn   = module.schedule_function.arn
  # the Scheduled Event itself (its time says which day is due, even on a late delivery),
  # wrapped so the function tells the check from the schedule
  input_transformer {
    input_template = "{\"check\": \"freshness\", \"event\": <aws.events.event>}"
  }
  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 5
  }
  dead_letter_config {
    arn = aws_sqs_queue.schedule_dlq.arn
  }
}

resource "aws_lambda_permission" "freshness" {
  count         = var.freshness_alarms ? 1 : 0
  statement_id  = "TheFreshnessRuleInvokes"
  action        = "lambda:InvokeFunction"
  function_name = module.schedule_function.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.freshness[0].arn
}

resource "aws_cloudwatch_log_metric_filter" "freshness" {
  for_each       = var.freshness_alarms ? local.freshness_metrics : {}
  name           = "${local.name}-batch-inference-${each.key}"
  log_group_name = module.schedule_function.log_group_name
  pattern        = "{ $.event = \"${each.value.event}\" && $.pipeline = \"${aws_sagemaker_pipeline.batch.pipeline_name}\" && $.${each.value.field} >= 0 }"
  metric_transformation {
    namespace  = local.freshness_namespace
    name       = each.key
    value      = "$.${each.value.field}"
    unit       = "Count"
    dimensions = { PipelineName = "$.pipeline" }
  }
}
