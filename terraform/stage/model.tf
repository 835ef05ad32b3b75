# Every model's container environment. Network isolation leaves pip no index: the
# scikit-learn image's start-up install of the model's code/ must build with the image's own
# setuptools, not in an isolated build environment it cannot download (pip reads this
# variable inverted: false = off). common/stage_model.py holds the same map (a test keeps
# them equal).
locals {
  stage_model_environment = {
    PIP_NO_BUILD_ISOLATION = "false"
  }
}

# One model per version, keyed by name: the promoted one, and the one deployed before it. A
# run started before this deployment names the previous model and may still be running its
# Preprocess step; its BatchTransform needs that model, so it is deleted only by the
# deployment after next. (A new version adds a key: no replacement, nothing deleted early.)
locals {
  deployed_model = {
    model_name               = var.model_name
    model_package_arn        = var.model_package_arn
    source_model_package_arn = var.source_model_package_arn
    model_version            = var.model_version
  }
  models = {
    for m in distinct(compact([var.model_name, try(var.previous_model.model_name, "")])) : m =>
    m == var.model_name ? local.deployed_model : var.previous_model
  }
}

# The execution role pulls exactly the images this stage runs (build.py names their
# repositories: the promoted and the kept model's, the Preprocess step's). The role's
# permissions boundary (infra/target-account) caps whatever a policy here could grant at the
# role's base rights plus image pulls, so the deploy role's iam:PutRolePolicy on this one role
# cannot widen it.
resource "aws_iam_role_policy" "pull_images" {
  name = "pull-the-stages-images"
  role = regex("[^/]+$", var.sagemaker_role_arn)
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "PullTheStagesImages"
      Effect   = "Allow"
      Action   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
      Resource = var.image_repository_arns
    }]
  })
}

resource "aws_sagemaker_model" "batch" {
  for_each                 = local.models
  name                     = each.key
  execution_role_arn       = var.sagemaker_role_arn
  enable_network_isolation = true

  primary_container {
    model_package_name = each.value.model_package_arn
    environment        = local.stage_model_environment
  }
  # SageMaker checks at CreateModel that the role can pull the image
  depends_on = [aws_iam_role_policy.pull_images]

  dynamic "vpc_config" {
    for_each = length(var.subnet_ids) > 0 ? [1] : []
    content {
      subnets            = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  tags = {
    "model-version"        = tostring(each.value.model_version)
    "source-model-package" = each.value.source_model_package_arn
  }
}

# What this deployment runs and keeps, for build.py to read at the next promotion (its
# previous_model). In the stage's bucket, which build.py and this deploy already use.
resource "aws_s3_object" "deployment_record" {
  bucket       = var.artifacts_bucket
  key          = "${module.naming.deployments_prefix}deployed-model.json"
  content_type = "application/json"
  content = jsonencode({
    current  = merge(local.deployed_model, { endpoint_config = local.endpoint == null ? null : { name = local.endpoint_config_name, spec = local.endpoint_config_spec } })
    previous = var.previous_model
  })
  kms_key_id = var.kms_key_arn

  # written last: only a deployment that got everything it claims (the endpoint serving the
  # new version among it) may become the next promotion's previous_model
  depends_on = [
    aws_sagemaker_pipeline.batch, aws_sagemaker_pipeline.shadow, module.schedule_function, module.outcome_function,
    aws_cloudwatch_event_target.upload_queue, module.upload_function,
    aws_sagemaker_endpoint.realtime, aws_appautoscaling_policy.endpoint, aws_cloudwatch_metric_alarm.stage,
    aws_cloudwatch_metric_alarm.endpoint, aws_cloudwatch_log_metric_filter.quality, aws_cloudwatch_dashboard.batch,
  ]
}
