output "artifacts_bucket" {
  value = aws_s3_bucket.artifacts.bucket
}

output "kms_key_arn" {
  value = aws_kms_key.stage.arn
}

output "sagemaker_role_arn" {
  value = aws_iam_role.execution.arn
}

output "shadow_role_arn" {
  description = "The shadow run's execution role (writes only under the output's _shadow/ prefix); build.py reads it from SSM (shadow-role-arn)."
  value       = aws_iam_role.shadow.arn
}

output "deploy_role_arn" {
  description = "Store as the GitHub environment variable AWS_DEPLOY_ROLE_ARN."
  value       = aws_iam_role.deploy.arn
}

output "plan_role_arn" {
  description = "Store as the variable AWS_DEPLOY_ROLE_ARN of the GitHub environment <environment>-plan (reads only)."
  value       = try(aws_iam_role.plan[0].arn, null)
}

output "terraform_state_bucket" {
  description = "Store as the GitHub environment variable TF_STATE_BUCKET."
  value       = aws_s3_bucket.state.bucket
}

output "ssm_parameters" {
  value = sort([for p in aws_ssm_parameter.contract : p.name])
}

output "input_reader_role_arns" {
  description = "The roles that read the stage's input (the execution role; the schedule's and upload functions' role): the principals an external input bucket's policy and key policy must allow (docs/stage-template.md, \"Inputs outside the stage's bucket\")."
  value       = [aws_iam_role.execution.arn, aws_iam_role.upload_starter.arn]
}
