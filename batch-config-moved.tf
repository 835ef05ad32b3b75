# The stage root's moved blocks, beside batch-config-template.tf (one root module: the
# repository root). Kept for one release, then this file goes: a stage deployed before
# terraform/stage existed holds its resources at the root's addresses, and these move each in
# state, nothing is replaced (the apply test moves every resource back to its address here
# and plans only moves).

moved {
  from = aws_sns_topic.alarms
  to   = module.stage.aws_sns_topic.alarms
}

moved {
  from = aws_sns_topic_subscription.email
  to   = module.stage.aws_sns_topic_subscription.email
}

moved {
  from = aws_cloudwatch_log_metric_filter.quality
  to   = module.stage.aws_cloudwatch_log_metric_filter.quality
}

moved {
  from = aws_cloudwatch_metric_alarm.stage
  to   = module.stage.aws_cloudwatch_metric_alarm.stage
}

moved {
  from = aws_cloudwatch_dashboard.batch
  to   = module.stage.aws_cloudwatch_dashboard.batch
}

moved {
  from = aws_sagemaker_endpoint_configuration.realtime
  to   = module.stage.aws_sagemaker_endpoint_configuration.realtime
}

moved {
  from = aws_sagemaker_model.serverless
  to   = module.stage.aws_sagemaker_model.serverless
}

moved {
  from = terraform_data.endpoint_kind
  to   = module.stage.terraform_data.endpoint_kind
}

moved {
  from = aws_cloudwatch_metric_alarm.endpoint
  to   = module.stage.aws_cloudwatch_metric_alarm.endpoint
}

moved {
  from = aws_sagemaker_endpoint.realtime
  to   = module.stage.aws_sagemaker_endpoint.realtime
}

moved {
  from = aws_appautoscaling_target.endpoint
  to   = module.stage.aws_appautoscaling_target.endpoint
}

moved {
  from = aws_appautoscaling_policy.endpoint
  to   = module.stage.aws_appautoscaling_policy.endpoint
}

moved {
  from = aws_kms_key.fallback
  to   = module.stage.aws_kms_key.fallback
}

moved {
  from = aws_iam_role_policy.pull_images
  to   = module.stage.aws_iam_role_policy.pull_images
}

moved {
  from = aws_sagemaker_model.batch
  to   = module.stage.aws_sagemaker_model.batch
}

moved {
  from = aws_s3_object.deployment_record
  to   = module.stage.aws_s3_object.deployment_record
}

moved {
  from = aws_cloudwatch_event_rule.run_ended
  to   = module.stage.aws_cloudwatch_event_rule.run_ended
}

moved {
  from = aws_sagemaker_pipeline.batch
  to   = module.stage.aws_sagemaker_pipeline.batch
}

moved {
  from = aws_cloudwatch_event_rule.schedule
  to   = module.stage.aws_cloudwatch_event_rule.schedule
}

moved {
  from = aws_sqs_queue.schedule_dlq
  to   = module.stage.aws_sqs_queue.schedule_dlq
}

moved {
  from = aws_sqs_queue_policy.schedule_dlq
  to   = module.stage.aws_sqs_queue_policy.schedule_dlq
}

moved {
  from = aws_cloudwatch_event_rule.upload
  to   = module.stage.aws_cloudwatch_event_rule.upload
}

moved {
  from = aws_sqs_queue.uploads
  to   = module.stage.aws_sqs_queue.uploads
}

moved {
  from = aws_sqs_queue.refused_uploads
  to   = module.stage.aws_sqs_queue.refused_uploads
}

moved {
  from = aws_sqs_queue_policy.uploads
  to   = module.stage.aws_sqs_queue_policy.uploads
}

moved {
  from = aws_cloudwatch_event_target.upload_queue
  to   = module.stage.aws_cloudwatch_event_target.upload_queue
}

# each function's log group, function and trigger, now terraform/modules/event-function

moved {
  from = aws_cloudwatch_log_group.schedule_function
  to   = module.stage.module.schedule_function.aws_cloudwatch_log_group.this
}

moved {
  from = aws_lambda_function.schedule
  to   = module.stage.module.schedule_function.aws_lambda_function.this
}

moved {
  from = aws_lambda_permission.schedule
  to   = module.stage.module.schedule_function.aws_lambda_permission.this[0]
}

moved {
  from = aws_cloudwatch_event_target.schedule
  to   = module.stage.module.schedule_function.aws_cloudwatch_event_target.this[0]
}

moved {
  from = aws_cloudwatch_log_group.outcome_function
  to   = module.stage.module.outcome_function.aws_cloudwatch_log_group.this
}

moved {
  from = aws_lambda_function.outcome
  to   = module.stage.module.outcome_function.aws_lambda_function.this
}

moved {
  from = aws_lambda_permission.outcome
  to   = module.stage.module.outcome_function.aws_lambda_permission.this[0]
}

moved {
  from = aws_cloudwatch_event_target.outcome
  to   = module.stage.module.outcome_function.aws_cloudwatch_event_target.this[0]
}

moved {
  from = aws_cloudwatch_log_group.upload_function[0]
  to   = module.stage.module.upload_function[0].aws_cloudwatch_log_group.this
}

moved {
  from = aws_lambda_function.upload[0]
  to   = module.stage.module.upload_function[0].aws_lambda_function.this
}

moved {
  from = aws_lambda_event_source_mapping.uploads[0]
  to   = module.stage.module.upload_function[0].aws_lambda_event_source_mapping.this[0]
}

# The alarms' addresses before they were one resource (an earlier release): Terraform chains
# these with the move of aws_cloudwatch_metric_alarm.stage above.
moved {
  from = aws_cloudwatch_metric_alarm.failed_executions
  to   = aws_cloudwatch_metric_alarm.stage["failed"]
}

moved {
  from = aws_cloudwatch_metric_alarm.failed_invocations
  to   = aws_cloudwatch_metric_alarm.stage["not_started"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dead_letters
  to   = aws_cloudwatch_metric_alarm.stage["dead_letters"]
}

moved {
  from = aws_cloudwatch_metric_alarm.upload_failed_invocations[0]
  to   = aws_cloudwatch_metric_alarm.stage["upload_not_queued"]
}

moved {
  from = aws_cloudwatch_metric_alarm.refused_uploads[0]
  to   = aws_cloudwatch_metric_alarm.stage["refused_uploads"]
}

moved {
  from = aws_cloudwatch_metric_alarm.uploads_waiting[0]
  to   = aws_cloudwatch_metric_alarm.stage["uploads_waiting"]
}
