# Account-wide: every SageMaker job of the account logs there, so a destroy of this root
# forgets them instead of deleting them (and the logs of other workloads with them).
resource "aws_cloudwatch_log_group" "jobs" {
  for_each          = var.manage_job_log_groups ? toset(local.job_log_groups) : toset([])
  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.stage.arn
  skip_destroy      = true
}
