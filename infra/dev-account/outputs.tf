output "registry_read_role_arn" {
  description = "Store as the GitHub repository variable AWS_REGISTRY_READ_ROLE_ARN."
  value       = aws_iam_role.registry_read.arn
}

output "github_token_secret_arn" {
  description = "Put the token with: aws secretsmanager put-secret-value --secret-id <this> --secret-string file://token"
  value       = aws_secretsmanager_secret.github_token.arn
}

output "approved_rule_arn" {
  value = aws_cloudwatch_event_rule.approved.arn
}

output "dead_letter_queue_url" {
  value = aws_sqs_queue.dispatch_dlq.id
}

output "model_artifacts_bucket_policy" {
  description = "The statements to merge into the artifacts bucket policy when manage_model_artifacts_bucket_policy is false."
  value       = data.aws_iam_policy_document.model_artifacts_bucket.json
}
