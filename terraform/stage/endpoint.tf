# The promoted model online too: the same SageMaker Model the pipeline's Transform uses, so
# batch and real time always serve the same version. Off unless the stage file's endpoint
# block says otherwise (null or enabled = false: nothing below is created).
locals {
  endpoint            = try(var.endpoint.enabled, false) ? var.endpoint : null
  endpoint_serverless = try(local.endpoint.serverless, null) != null
  # what the endpoint serves: the batch model, or its serverless twin (below)
  endpoint_name       = module.naming.endpoint
  endpoint_variant    = "AllTraffic"
  endpoint_dimensions = { EndpointName = local.endpoint_name, VariantName = local.endpoint_variant }
  data_capture        = try(local.endpoint.data_capture.enabled, false) ? local.endpoint.data_capture : null
  endpoint_canary = (local.endpoint_serverless ? { type = "CAPACITY_PERCENT", value = 10 }
  : try(local.endpoint.min_instance_count, 1) >= 2 ? { type = "INSTANCE_COUNT", value = 1 } : null)
  # Rollback during a deployment: SageMaker watches these and, in alarm, shifts traffic back
  # to the old fleet. Missing data is not breaching (no traffic is not a failure here).
  endpoint_alarms = local.endpoint == null ? {} : merge(
    {
      errors = {
        description = "The ${local.endpoint_name} endpoint answered with 5XX errors (its model failed requests)."
        metric      = "Invocation5XXErrors"
        statistic   = "Sum"
        extended    = null
        threshold   = 0
        comparison  = "GreaterThanThreshold"
        period      = 60
        periods     = 2
        missing     = "notBreaching"
      }
      latency = {
        description = "The ${local.endpoint_name} endpoint's model latency p99 is over ${local.endpoint.latency_p99_threshold_ms} ms."
        metric      = "ModelLatency" # microseconds
        statistic   = null
        extended    = "p99"
        threshold   = local.endpoint.latency_p99_threshold_ms * 1000
        comparison  = "GreaterThanThreshold"
        period      = 300
        periods     = 1
        missing     = "notBreaching"
      }
    },
    local.endpoint.alarm_on_no_invocations ? {
      no_invocations = {
        description = "The ${local.endpoint_name} endpoint had no invocation for an hour."
        metric      = "Invocations"
        statistic   = "Sum"
        extended    = null
        threshold   = 1
        comparison  = "LessThanThreshold"
        period      = 3600
        periods     = 1
        missing     = "breaching" # no traffic publishes no datapoint at all
      }
    } : {},
  )
}

# Configurations cannot change: each version or setting is a new one, named by version and
# a digest of what it holds, created before the endpoint moves to it. Terraform deletes an
# instance it no longer has before it updates what used it, so the configuration the
# endpoint serves now (the deployment record's, which build.py passes on) stays in the map
# until the endpoint serves the new one: a rolled-back update (the endpoint's postcondition
# fails the apply) keeps it, and the next deployment deletes it. Keyed by name, not
# create_before_destroy, which Terraform would extend to the models it depends on: a model
# replaced under the same name would then be created twice and deleted once.
locals {
  # everything a configuration holds: the deployment record keeps it, so the next apply can
  # keep the configuration exactly as it is
  endpoint_config_spec = local.endpoint == null ? null : {
    model_name             = local.endpoint_serverless ? local.serverless_model_name : var.model_name
    model_package_arn      = var.model_package_arn
    model_version          = var.model_version
    kms_key_arn            = local.endpoint_serverless ? null : var.kms_key_arn
    instance_type          = local.endpoint_serverless ? null : local.endpoint.instance_type
    initial_instance_count = local.endpoint_serverless ? null : local.endpoint.min_instance_count
    serverless             = local.endpoint_serverless ? { memory_size_in_mb = local.endpoint.serverless.memory_size_in_mb, max_concurrency = local.endpoint.serverless.max_concurrency } : null
    capture_percentage     = try(local.data_capture.sampling_percentage, null)
    capture_destination    = "s3://${var.artifacts_bucket}/${module.naming.data_capture_prefix}"
    capture_kms_key_arn    = var.kms_key_arn # null: the bucket's default encryption
  }
  # only what the configuration holds: an alarm or scaling setting changes no fleet
  endpoint_config_name = local.endpoint == null ? null : "${module.naming.endpoint_config_prefix}${var.model_version}-${substr(sha256(jsonencode([
    var.model_name, var.kms_key_arn, var.artifacts_bucket, local.endpoint_serverless ? null : local.endpoint.instance_type,
    local.endpoint_serverless ? null : local.endpoint.min_instance_count, local.endpoint.serverless, local.data_capture,
  ])), 0, 8)}"
  endpoint_configs = local.endpoint == null ? {} : merge(
    var.endpoint_config_in_service == null ? {} : { (var.endpoint_config_in_service.name) = var.endpoint_config_in_service.spec },
    { (local.endpoint_config_name) = local.endpoint_config_spec },
  )
}

resource "aws_sagemaker_endpoint_configuration" "realtime" {
  for_each = local.endpoint_configs
  name     = each.key
  # the instances' storage volume, with the stage's key when it has one (as the jobs'
  # volumes); serverless endpoints take no key (AWS manages their storage)
  kms_key_arn = each.value.kms_key_arn

  production_variants {
    variant_name           = local.endpoint_variant
    model_name             = each.value.model_name
    instance_type          = each.value.instance_type
    initial_instance_count = each.value.initial_instance_count
    dynamic "serverless_config" {
      for_each = each.value.serverless == null ? [] : [each.value.serverless]
      content {
        memory_size_in_mb = serverless_config.value.memory_size_in_mb
        max_concurrency   = serverless_config.value.max_concurrency
      }
    }
  }

  dynamic "data_capture_config" {
    for_each = each.value.capture_percentage == null ? [] : [each.value]
    content {
      enable_capture              = true
      initial_sampling_percentage = data_capture_config.value.capture_percentage
      destination_s3_uri          = data_capture_config.value.capture_destination
      kms_key_id                  = data_capture_config.value.capture_kms_key_arn
      capture_options {
        capture_mode = "Input"
      }
      capture_options {
        capture_mode = "Output"
      }
      capture_content_type_header {
        csv_content_types = ["text/csv"]
      }
    }
  }

  # CreateEndpointConfig checks that the model exists
  depends_on = [aws_sagemaker_model.batch, aws_sagemaker_model.serverless]
}

# AWS's Serverless Inference runs neither network-isolated nor in a VPC (its feature
# exclusions), so the batch model, which is both, cannot serve it: a serverless endpoint gets
# a model of the same package without them, <group>-<env>-s<version> (inside the deploy
# role's model/<group>-<env>-* scope, as long as the batch model's name). Keyed by name like
# the batch models, so a new version's model exists before the endpoint moves off the old.
locals {
  serverless_model_name = "${trimsuffix(var.model_name, "-v${var.model_version}")}-s${var.model_version}"
}

resource "aws_sagemaker_model" "serverless" {
  #checkov:skip=CKV_AWS_370:Serverless Inference runs no network-isolated model (AWS's feature exclusions); only created when the stage file sets endpoint.serverless.without_network_isolation = true
  # the promoted version's, and the one the configuration in service runs, if serverless
  for_each                 = { for spec in values(local.endpoint_configs) : spec.model_name => spec if spec.serverless != null }
  name                     = each.key
  execution_role_arn       = var.sagemaker_role_arn
  enable_network_isolation = false

  primary_container {
    model_package_name = each.value.model_package_arn
    environment        = local.stage_model_environment
  }
  depends_on = [aws_iam_role_policy.pull_images]

  tags = {
    "model-version"     = tostring(each.value.model_version)
    "network-isolation" = "off: serverless endpoint"
  }
}

# An instance-based endpoint cannot become serverless (nor back) by UpdateEndpoint: AWS
# refuses the conversion. Switching replaces the endpoint (deleted, then created: it does
# not serve in between).
resource "terraform_data" "endpoint_kind" {
  count = local.endpoint == null ? 0 : 1
  input = local.endpoint_serverless ? "serverless" : "instances"
}

resource "aws_cloudwatch_metric_alarm" "endpoint" {
  for_each            = local.endpoint_alarms
  alarm_name          = "${local.name}-endpoint-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  namespace           = "AWS/SageMaker"
  metric_name         = each.value.metric
  dimensions          = local.endpoint_dimensions
  statistic           = each.value.statistic
  extended_statistic  = each.value.extended
  period              = each.value.period
  evaluation_periods  = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = each.value.comparison
  treat_missing_data  = each.value.missing
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_sagemaker_endpoint" "realtime" {
  count                = local.endpoint == null ? 0 : 1
  name                 = local.endpoint_name
  endpoint_config_name = aws_sagemaker_endpoint_configuration.realtime[local.endpoint_config_name].name

  lifecycle {
    replace_triggered_by = [terraform_data.endpoint_kind]
    # A blue/green update SageMaker rolled back (alarm, failed canary) leaves the endpoint
    # InService on its old configuration: the provider's waiter succeeds and reads the old
    # name back. Failing here stops the apply before the old configuration (and model) it
    # still serves are deleted, and before the deployment record claims the new version.
    postcondition {
      condition     = self.endpoint_config_name == aws_sagemaker_endpoint_configuration.realtime[local.endpoint_config_name].name
      error_message = "The endpoint ${local.endpoint_name} still serves ${self.endpoint_config_name}, not the new ${aws_sagemaker_endpoint_configuration.realtime[local.endpoint_config_name].name}: SageMaker rolled the update back (its alarms or canary). Nothing older was deleted; read the reason with: aws sagemaker describe-endpoint --endpoint-name ${local.endpoint_name} --query FailureReason"
    }
  }

  # A new version reaches the endpoint blue/green: SageMaker starts the new fleet, gives a
  # canary (one instance, or 10 % of a serverless endpoint's capacity) the traffic for 5
  # minutes, then all of it, and keeps the old fleet 5 more minutes; if the errors or latency
  # alarm fires meanwhile, all traffic goes back to the old fleet and the update fails (so
  # does the apply). A canary may be at most half the new fleet: a one-instance endpoint
  # shifts all at once and is watched for the same 5 minutes.
  deployment_config {
    blue_green_update_policy {
      traffic_routing_configuration {
        type                     = local.endpoint_canary == null ? "ALL_AT_ONCE" : "CANARY"
        wait_interval_in_seconds = 300
        dynamic "canary_size" {
          for_each = local.endpoint_canary == null ? [] : [local.endpoint_canary]
          content {
            type  = canary_size.value.type
            value = canary_size.value.value
          }
        }
      }
      termination_wait_in_seconds          = 300
      maximum_execution_timeout_in_seconds = 3600
    }
    auto_rollback_configuration {
      alarms {
        alarm_name = aws_cloudwatch_metric_alarm.endpoint["errors"].alarm_name
      }
      alarms {
        alarm_name = aws_cloudwatch_metric_alarm.endpoint["latency"].alarm_name
      }
    }
  }
}

# Instance-based endpoints scale on invocations per instance (SageMaker's predefined metric,
# a minute's invocations divided by the instances); serverless ones scale by themselves, and
# a fleet whose min and max counts are equal does not scale.
resource "aws_appautoscaling_target" "endpoint" {
  count              = local.endpoint == null || local.endpoint_serverless ? 0 : (local.endpoint.max_instance_count > local.endpoint.min_instance_count ? 1 : 0)
  service_namespace  = "sagemaker"
  resource_id        = "endpoint/${aws_sagemaker_endpoint.realtime[0].name}/variant/${local.endpoint_variant}"
  scalable_dimension = "sagemaker:variant:DesiredInstanceCount"
  min_capacity       = local.endpoint.min_instance_count
  max_capacity       = local.endpoint.max_instance_count
}

resource "aws_appautoscaling_policy" "endpoint" {
  count              = length(aws_appautoscaling_target.endpoint)
  name               = "${local.name}-endpoint-invocations-per-instance"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.endpoint[0].service_namespace
  resource_id        = aws_appautoscaling_target.endpoint[0].resource_id
  scalable_dimension = aws_appautoscaling_target.endpoint[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = local.endpoint.target_invocations_per_instance
    scale_in_cooldown  = local.endpoint.scale_in_cooldown_seconds
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "SageMakerVariantInvocationsPerInstance"
    }
  }
}
