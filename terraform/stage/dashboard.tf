locals {
  # What SageMaker publishes per job instance (Host = "<job name>/algo-N" for Processing,
  # "<job name>/<instance id>" for Transform); Transform jobs publish no DiskUtilization.
  job_metrics = {
    Processing = { namespace = "/aws/sagemaker/ProcessingJobs", metrics = ["CPUUtilization", "MemoryUtilization", "DiskUtilization"] }
    Transform  = { namespace = "/aws/sagemaker/TransformJobs", metrics = ["CPUUtilization", "MemoryUtilization"] }
  }
  job_series = flatten([
    for step, job in var.job_steps : [
      for metric in local.job_metrics[job.type].metrics : { step = step, namespace = local.job_metrics[job.type].namespace, metric = metric, prefix = job.job_name_prefix }
    ]
  ])
}

resource "aws_cloudwatch_dashboard" "batch" {
  dashboard_name = "${local.name}-batch-inference"
  dashboard_body = jsonencode({
    widgets = concat([
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "Pipeline executions"
          region  = var.region
          stat    = "Sum"
          period  = 3600
          metrics = [for m in ["ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped"] : ["AWS/Sagemaker/ModelBuildingPipeline", m, "PipelineName", var.pipeline_name]]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Execution duration and step failures"
          region = var.region
          period = 3600
          # step metrics are published per PipelineName and StepName: one series per step
          metrics = concat(
            [["AWS/Sagemaker/ModelBuildingPipeline", "ExecutionDuration", "PipelineName", var.pipeline_name, { stat = "Maximum" }]],
            [for step in sort(keys(var.job_steps)) : ["AWS/Sagemaker/ModelBuildingPipeline", "StepFailed", "PipelineName", var.pipeline_name, "StepName", step, { stat = "Sum", label = "${step} failed" }]],
          )
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Jobs: CPU, memory, disk (per instance)"
          region = var.region
          stat   = "Maximum"
          period = 300
          # the phrase in quotes matches this stage's job names, whatever SageMaker appends
          metrics = [for i, s in local.job_series : [{ id = "j${i}", label = "${s.step} ${s.metric}", expression = "SEARCH('{${s.namespace},Host} MetricName=\"${s.metric}\" \"${s.prefix}\"', 'Maximum', 300)" }]]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Schedule: invocations, failed invocations, days without data"
          region = var.region
          stat   = "Sum"
          period = 3600
          metrics = concat(
            [for m in ["Invocations", "FailedInvocations"] : ["AWS/Events", m, "RuleName", aws_cloudwatch_event_rule.schedule.name]],
            [[local.quality_namespace, aws_cloudwatch_log_metric_filter.quality["EmptyDays"].metric_transformation[0].name, "PipelineName", var.pipeline_name]],
          )
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title  = "Batch quality: rows read, rejected, scored"
          region = var.region
          stat   = "Sum"
          period = 3600
          metrics = [for m in ["RowsRead", "RowsRejected", "RowsScored"] :
          [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality[m].metric_transformation[0].name, "PipelineName", var.pipeline_name]]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title  = "Batch quality: rejected fraction and drift (largest PSI) against the gate (${var.quality_gate_mode})"
          region = var.region
          stat   = "Maximum"
          period = 3600
          metrics = [for m in ["RejectedFraction", "DriftScore"] :
          [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality[m].metric_transformation[0].name, "PipelineName", var.pipeline_name]]
          annotations = { horizontal = [
            { label = "MaxRejectedFraction", value = var.max_rejected_fraction },
            { label = "MaxDriftScore", value = var.max_drift_score },
          ] }
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 24, height = 6
        properties = {
          title  = "Predictions: how many, and their mean (from the model's handlers' metric lines)"
          region = var.region
          period = 3600
          metrics = [
            [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality["PredictionCount"].metric_transformation[0].name, "PipelineName", var.pipeline_name, { id = "count", stat = "Sum", label = "predictions" }],
            [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality["PredictionSum"].metric_transformation[0].name, "PipelineName", var.pipeline_name, { id = "total", stat = "Sum", visible = false }],
            [{ id = "mean", expression = "total / count", label = "prediction mean", yAxis = "right" }],
          ]
        }
      },
      {
        type = "log", x = 0, y = 24, width = 24, height = 6
        properties = {
          title  = "Errors in the jobs' logs"
          region = var.region
          query  = "SOURCE '/aws/sagemaker/ProcessingJobs' | SOURCE '/aws/sagemaker/TransformJobs' | fields @timestamp, @logStream, @message | filter @message like /(?i)(error|exception|traceback)/ | sort @timestamp desc | limit 100"
        }
      },
      {
        type = "metric", x = 0, y = 36, width = 24, height = 6
        properties = {
          title  = "Cost per run (USD, on-demand prices of the template's table and instance_prices) and per 1,000 rows scored"
          region = var.region
          stat   = "Sum"
          period = 86400
          metrics = [
            [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality["RunCost"].metric_transformation[0].name, "PipelineName", var.pipeline_name, { label = "USD per day" }],
            [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality["CostPer1000Rows"].metric_transformation[0].name, "PipelineName", var.pipeline_name, { stat = "Maximum", label = "USD per 1,000 rows (largest run)", yAxis = "right" }],
          ]
        }
      },
      ], var.run_on_upload ? [
      {
        type = "metric", x = 0, y = 30, width = 24, height = 6
        properties = {
          title  = "Run on upload: waiting, refused, oldest wait (s)"
          region = var.region
          period = 300
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.uploads[0].name, { stat = "Maximum", label = "waiting" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.refused_uploads[0].name, { stat = "Maximum", label = "refused" }],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.uploads[0].name, { stat = "Maximum", label = "oldest wait", yAxis = "right" }],
          ]
        }
      },
    ] : [], local.endpoint_widgets, local.model_quality_widgets)
  })
}

# the optional endpoint's widgets (endpoint.tf)
locals {
  endpoint_widgets = [for widget in [
    {
      type = "metric", x = 0, y = 36, width = 12, height = 6
      properties = {
        title   = "Endpoint ${local.endpoint_name}: invocations and errors"
        region  = var.region
        stat    = "Sum"
        period  = 60
        metrics = [for m in ["Invocations", "Invocation4XXErrors", "Invocation5XXErrors"] : ["AWS/SageMaker", m, "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant]]
      }
    },
    {
      type = "metric", x = 12, y = 36, width = 12, height = 6
      properties = {
        title  = "Endpoint ${local.endpoint_name}: model latency (ms)"
        region = var.region
        period = 60
        metrics = [
          ["AWS/SageMaker", "ModelLatency", "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant, { id = "p50", stat = "p50", visible = false }],
          ["AWS/SageMaker", "ModelLatency", "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant, { id = "p99", stat = "p99", visible = false }],
          [{ id = "p50ms", expression = "p50 / 1000", label = "p50" }],
          [{ id = "p99ms", expression = "p99 / 1000", label = "p99" }],
        ]
        annotations = { horizontal = [{ label = "alarm", value = try(local.endpoint.latency_p99_threshold_ms, 0) }] }
      }
    },
    {
      type = "metric", x = 0, y = 42, width = 24, height = 6
      properties = {
        # no metric counts a variant's instances; each instance publishes CPUUtilization once a
        # minute, so its sample count per minute is the number of instances in service
        title  = local.endpoint_serverless ? "Endpoint ${local.endpoint_name}: serverless concurrency in use" : "Endpoint ${local.endpoint_name}: instances in service (CPUUtilization samples a minute)"
        region = var.region
        period = 60
        metrics = local.endpoint_serverless ? [
          ["AWS/SageMaker", "ServerlessConcurrentExecutionsUtilization", "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant, { stat = "Maximum", label = "concurrency used" }],
          ] : [
          ["/aws/sagemaker/Endpoints", "CPUUtilization", "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant, { stat = "SampleCount", label = "instances" }],
        ]
      }
    },
  ] : widget if local.endpoint != null]
}

# Model quality with delayed labels (evaluate.py's line, one point per day evaluated, at the
# time its labels were evaluated): the classification metrics, the regression ones, and the
# drop from the registered quality with the label coverage, against max_quality_drop.
locals {
  model_quality_widgets = [
    for i, widget in [
      { title = "Model quality (delayed labels): classification", metrics = ["AUC", "Accuracy", "Precision", "Recall", "LogLoss", "CalibrationError"], limits = [] },
      { title = "Model quality (delayed labels): regression", metrics = ["MAE", "RMSE", "Bias"], limits = [] },
      { title = "Model quality: drop from the registered quality (alarm over max_quality_drop) and label coverage", metrics = ["QualityDrop", "LabelCoverage"], limits = [var.max_quality_drop] },
      ] : {
      type = "metric", x = (i % 2) * 12, y = 48 + floor(i / 2) * 6, width = 12, height = 6
      properties = merge({
        title   = widget.title
        region  = var.region
        stat    = "Maximum"
        period  = 3600
        metrics = [for m in widget.metrics : [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality[m].metric_transformation[0].name, "PipelineName", var.pipeline_name]]
      }, [for limit in widget.limits : { annotations = { horizontal = [{ label = "max_quality_drop", value = limit }] } }]...)
    }
  ]
}
