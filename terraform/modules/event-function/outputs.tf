output "function_name" {
  value = aws_lambda_function.this.function_name
}

output "arn" {
  value = aws_lambda_function.this.arn
}

output "log_group_name" {
  value = aws_cloudwatch_log_group.this.name
}

# the resources themselves, for tests/terraform/stage.tftest.hcl to assert on
output "function" {
  value = aws_lambda_function.this
}

output "log_group" {
  value = aws_cloudwatch_log_group.this
}

output "permission" {
  value = one(aws_lambda_permission.this)
}

output "target" {
  value = one(aws_cloudwatch_event_target.this)
}

output "source_mapping" {
  value = one(aws_lambda_event_source_mapping.this)
}
