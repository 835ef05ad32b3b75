resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_github_oidc_provider ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1
  url   = "https://token.actions.githubusercontent.com"
}

locals {
  github_provider_arn = var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn
}

# The deploy role: jobs of this repository in the GitHub environment of this stage; the plan
# role: jobs in "<stage>-plan" (deploy.yml's prod plan before the gate).
data "aws_iam_policy_document" "github_trust" {
  for_each = { deploy = local.github_sub, plan = "${local.github_sub}-plan" }
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.github_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = [each.value]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name               = "${local.name}-deploy"
  description        = "Assumed by ${var.github_repository}'s deploy workflow (environment ${var.environment})."
  assume_role_policy = data.aws_iam_policy_document.github_trust["deploy"].json
  # deploy-stage.yml asks for 2 h before Terraform: an endpoint's blue/green update may run
  # over an hour (its maximum_execution_timeout_in_seconds plus the canary and kept fleet)
  max_session_duration = 7200
}

locals {
  arn_prefix = "arn:${local.partition}:%s:${var.region}:${local.account}"
  stage_arns = {
    # SageMaker may lower-case names in ARNs and IAM compares ARNs case-sensitively: both forms
    group     = distinct([for g in [var.model_package_group_name, lower(var.model_package_group_name)] : "${format(local.arn_prefix, "sagemaker")}:model-package-group/${g}"])
    packages  = distinct([for g in [var.model_package_group_name, lower(var.model_package_group_name)] : "${format(local.arn_prefix, "sagemaker")}:model-package/${g}/*"])
    models    = [for prefix in module.naming.model_prefixes : "${format(local.arn_prefix, "sagemaker")}:model/${prefix}*"]
    pipelines = local.stage_pipelines
    rules     = "${format(local.arn_prefix, "events")}:rule/${local.name}-*"
    queues    = "${format(local.arn_prefix, "sqs")}:${local.name}-*"
    # the queues rules deliver to (batch-config-template.tf): run on upload, and the rules'
    # dead-letter queue (whether IAM counts a target's DeadLetterConfig is not documented)
    rule_queues = [local.upload_queue, local.schedule_dlq]
    topics      = "${format(local.arn_prefix, "sns")}:${local.name}-*"
    alarms      = "${format(local.arn_prefix, "cloudwatch")}:alarm:${local.name}-*"
    functions   = "${format(local.arn_prefix, "lambda")}:function:${local.name}-*"
    dashboard   = "arn:${local.partition}:cloudwatch::${local.account}:dashboard/${local.name}-*"
    # the optional real-time endpoint (batch-config-template.tf): <project>-<env>-realtime and
    # its configurations <project>-<env>-v<version>-<suffix>
    endpoints        = distinct([for n in [module.naming.endpoint, lower(module.naming.endpoint)] : "${format(local.arn_prefix, "sagemaker")}:endpoint/${n}"])
    endpoint_configs = distinct([for n in [module.naming.endpoint_config_prefix, lower(module.naming.endpoint_config_prefix)] : "${format(local.arn_prefix, "sagemaker")}:endpoint-config/${n}*"])
  }
}
