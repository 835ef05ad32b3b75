output "model_name" {
  value = aws_sagemaker_model.batch[var.model_name].name
}

output "pipeline_arn" {
  value = aws_sagemaker_pipeline.batch.arn
}

output "shadow_pipeline_arn" {
  value = one(aws_sagemaker_pipeline.shadow[*].arn)
}

output "schedule_rule_arn" {
  value = aws_cloudwatch_event_rule.schedule.arn
}

output "alarm_topic_arn" {
  value = aws_sns_topic.alarms.arn
}

output "upload_function_arn" {
  value = one(module.upload_function[*].arn)
}

output "dashboard_name" {
  value = aws_cloudwatch_dashboard.batch.dashboard_name
}

output "endpoint_name" {
  value = one(aws_sagemaker_endpoint.realtime[*].name)
}

output "endpoint_config_name" {
  description = "The configuration this deployment puts the endpoint on (null without an endpoint)."
  value       = local.endpoint_config_name
}
