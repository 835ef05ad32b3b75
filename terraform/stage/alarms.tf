locals {
  # Preprocess prints one JSON line per run and instance ("event": "batch-quality"), the
  # sample model's handlers one per Transform request ("batch-predictions"); these filters
  # on the jobs' log groups make them metrics per pipeline (jobs run network-isolated, so
  # they cannot call CloudWatch themselves). DriftScore only when a baseline was measured.
  quality_namespace = "BatchInference/Quality"
  # A metric's value field must be matched by its filter's pattern (AWS: "If you are using a
  # field value, the field value must have been matched using the pattern"), hence ">= 0"
  # (or "= *" for a sum that may be negative): a run without a baseline has no drift_score
  # and publishes no DriftScore.
  quality_metrics = {
    RowsRead         = { value = "$.rows_read", unit = "Count", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    RowsRejected     = { value = "$.rows_rejected", unit = "Count", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    RowsScored       = { value = "$.rows_scored", unit = "Count", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    RejectedFraction = { value = "$.rejected_fraction", unit = "None", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    DriftScore       = { value = "$.drift_score", unit = "None", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    PredictionCount  = { value = "$.count", unit = "Count", match = ">= 0", event = "batch-predictions", log_group = "/aws/sagemaker/TransformJobs" }
    PredictionSum    = { value = "$.sum", unit = "None", match = "= *", event = "batch-predictions", log_group = "/aws/sagemaker/TransformJobs" }
    # the schedule's function: 1 per day it found without data (0 for the others)
    EmptyDays = { value = "$.empty", unit = "Count", match = ">= 0", event = "partition-run", log_group = module.schedule_function.log_group_name }
    # the model-quality job (evaluate.py), once per day whose delayed labels landed: its
    # metrics against the labels, the join's coverage, the drop from the registered quality
    # (a fraction; negative when better). A classification's line has no MAE/RMSE/Bias, a
    # regression's no AUC..CalibrationError: each filter publishes only what its task measured.
    QualityDrop      = { value = "$.quality_drop", unit = "None", match = "= *", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    LabelCoverage    = { value = "$.label_coverage", unit = "None", match = ">= 0", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    AUC              = { value = "$.auc", unit = "None", match = ">= 0", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    Accuracy         = { value = "$.accuracy", unit = "None", match = ">= 0", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    Precision        = { value = "$.precision", unit = "None", match = ">= 0", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    Recall           = { value = "$.recall", unit = "None", match = ">= 0", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    LogLoss          = { value = "$.log_loss", unit = "None", match = ">= 0", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    CalibrationError = { value = "$.calibration_error", unit = "None", match = ">= 0", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    MAE              = { value = "$.mae", unit = "None", match = ">= 0", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    RMSE             = { value = "$.rmse", unit = "None", match = ">= 0", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    Bias             = { value = "$.bias", unit = "None", match = "= *", event = "model-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    # the run-outcome function: what each run cost (stage_runtime/run_cost.py), when known
    RunCost         = { value = "$.cost_usd", unit = "None", match = ">= 0", event = "run-cost", log_group = module.outcome_function.log_group_name }
    CostPer1000Rows = { value = "$.cost_per_1000_rows", unit = "None", match = ">= 0", event = "run-cost", log_group = module.outcome_function.log_group_name }
  }
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-batch-inference-alarms"
  kms_master_key_id = local.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# The stage's alarms share one shape (a metric over a period above a threshold, notifying the
# topic), so one resource makes them all; each key names its alarm: <name>-batch-inference-<key,
# with dashes>. An alarm may set its own period, comparison and treat_missing_data; otherwise 5
# minutes, above the threshold, missing data not breaching.
locals {
  alarms = merge(
    {
      failed = {
        description = "A run of ${var.pipeline_name} failed."
        namespace   = "AWS/Sagemaker/ModelBuildingPipeline"
        metric      = "ExecutionFailed"
        dimension   = "PipelineName"
        watched     = aws_sagemaker_pipeline.batch.pipeline_name
        statistic   = "Sum"
        threshold   = 0
        notify_ok   = true
      }
      not_started = {
        description = "The schedule could not start ${var.pipeline_name}."
        namespace   = "AWS/Events"
        metric      = "FailedInvocations"
        dimension   = "RuleName"
        watched     = aws_cloudwatch_event_rule.schedule.name
        statistic   = "Sum"
        threshold   = 0
        notify_ok   = false
      }
      dead_letters = {
        description = "Runs of ${var.pipeline_name} that could not be started or recorded are waiting in ${aws_sqs_queue.schedule_dlq.name}."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimension   = "QueueName"
        watched     = aws_sqs_queue.schedule_dlq.name
        statistic   = "Maximum"
        threshold   = 0
        notify_ok   = false
      }
    },
    {
      rejected_rows = {
        description = "A run of ${var.pipeline_name} rejected more than ${var.max_rejected_fraction * 100} % of its rows (gate mode ${var.quality_gate_mode}): see the run's rejected/ output."
        namespace   = local.quality_namespace
        metric      = aws_cloudwatch_log_metric_filter.quality["RejectedFraction"].metric_transformation[0].name
        dimension   = "PipelineName"
        watched     = aws_sagemaker_pipeline.batch.pipeline_name
        statistic   = "Maximum"
        threshold   = var.max_rejected_fraction
        notify_ok   = false
      }
      drift = {
        description = "A run of ${var.pipeline_name} drifted from the model's baseline: a feature's PSI over ${var.max_drift_score} (gate mode ${var.quality_gate_mode}); the run's summary names the features (baseline: ${coalesce(var.baseline_url, "none")})."
        namespace   = local.quality_namespace
        metric      = aws_cloudwatch_log_metric_filter.quality["DriftScore"].metric_transformation[0].name
        dimension   = "PipelineName"
        watched     = aws_sagemaker_pipeline.batch.pipeline_name
        statistic   = "Maximum"
        threshold   = var.max_drift_score
        notify_ok   = false
      }
    },
    {
      # a day's quality, measured once its delayed labels landed, fell further below what
      # the package was registered with than the stage allows (evaluate.py's quality_drop)
      quality_drop = {
        description = "A day scored by ${var.pipeline_name} measured against its delayed labels is more than ${var.max_quality_drop * 100} % worse than the model was registered with (AUC, or RMSE for regression): see the day's marker (model_quality) and the runbook."
        namespace   = local.quality_namespace
        metric      = aws_cloudwatch_log_metric_filter.quality["QualityDrop"].metric_transformation[0].name
        dimension   = "PipelineName"
        watched     = aws_sagemaker_pipeline.batch.pipeline_name
        statistic   = "Maximum"
        threshold   = var.max_quality_drop
        notify_ok   = false
      }
    },
    var.run_on_upload ? {
      upload_not_queued = {
        description = "An upload under ${var.input_data_url} could not be queued for a run."
        namespace   = "AWS/Events"
        metric      = "FailedInvocations"
        dimension   = "RuleName"
        watched     = one(aws_cloudwatch_event_rule.upload[*].name)
        statistic   = "Sum"
        threshold   = 0
        notify_ok   = false
      }
      refused_uploads = {
        description = "Uploads under ${var.input_data_url} that did not start a run (refused, or waited over ${var.upload_max_wait_hours} h) are in ${one(aws_sqs_queue.refused_uploads[*].name)}; each has a reason attribute."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimension   = "QueueName"
        watched     = one(aws_sqs_queue.refused_uploads[*].name)
        statistic   = "Maximum"
        threshold   = 0
        notify_ok   = false
      }
      uploads_waiting = {
        description = "The oldest upload under ${var.input_data_url} has waited over an hour for a run: runs are slow, failing to start, or upload_max_running is too low."
        namespace   = "AWS/SQS"
        metric      = "ApproximateAgeOfOldestMessage"
        dimension   = "QueueName"
        watched     = one(aws_sqs_queue.uploads[*].name)
        statistic   = "Maximum"
        threshold   = 3600
        notify_ok   = false
      }
    } : {},
    var.freshness_alarms ? local.freshness_alarms : {}, # freshness.tf
  )
}

resource "aws_cloudwatch_log_metric_filter" "quality" {
  for_each       = local.quality_metrics
  name           = "${local.name}-batch-inference-${each.key}"
  log_group_name = each.value.log_group
  pattern        = "{ $.event = \"${each.value.event}\" && $.pipeline = \"${aws_sagemaker_pipeline.batch.pipeline_name}\" && ${each.value.value} ${each.value.match} }"
  metric_transformation {
    namespace  = local.quality_namespace
    name       = each.key
    value      = each.value.value
    unit       = each.value.unit
    dimensions = { PipelineName = "$.pipeline" }
  }
}

resource "aws_cloudwatch_metric_alarm" "stage" {
  for_each            = local.alarms
  alarm_name          = "${local.name}-batch-inference-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = { (each.value.dimension) = each.value.watched }
  statistic           = each.value.statistic
  period              = try(each.value.period, 300)
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = try(each.value.comparison, "GreaterThanThreshold")
  treat_missing_data  = try(each.value.treat_missing_data, "notBreaching")
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = each.value.notify_ok ? [aws_sns_topic.alarms.arn] : null
}
