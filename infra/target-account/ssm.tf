locals {
  ssm_parameters = merge(
    {
      "artifacts-bucket"        = { type = "String", value = aws_s3_bucket.artifacts.bucket }
      "sagemaker-role-arn"      = { type = "String", value = aws_iam_role.execution.arn }
      "kms-key-arn"             = { type = "String", value = aws_kms_key.stage.arn }
      "start-pipeline-role-arn" = { type = "String", value = aws_iam_role.start_pipeline.arn }
      "upload-starter-role-arn" = { type = "String", value = aws_iam_role.upload_starter.arn }
      # the shadow run's role (shadow-role.tf): build.py writes it into the tfvars, and the
      # stage's apply makes the shadow pipeline with it
      "shadow-role-arn" = { type = "String", value = aws_iam_role.shadow.arn }
    },
    length(var.subnet_ids) > 0 ? {
      "subnet-ids"         = { type = "StringList", value = join(",", var.subnet_ids) }
      "security-group-ids" = { type = "StringList", value = join(",", var.security_group_ids) }
    } : {},
    # JSON: [{url, account_id, kms_key_arn}], what build.py passes the stage template
    length(local.external_inputs) > 0 ? {
      "external-inputs" = { type = "String", value = jsonencode(local.external_inputs) }
    } : {},
  )
}

resource "aws_ssm_parameter" "contract" {
  #checkov:skip=CKV2_AWS_34:names and ARNs, not secrets; SecureString would make every reader need kms:Decrypt
  for_each    = local.ssm_parameters
  name        = "${local.ssm_prefix}/${each.key}"
  description = "Read by build.py --stage ${var.environment}."
  type        = each.value.type
  value       = each.value.value
}
