# Every variable is batch-config-template.tf's of the same name, passed through unchanged:
# described and validated there, once. The types are the root's too, so that a test may call
# this module directly (tests/terraform/stage.tftest.hcl) and get the same optional defaults.

variable "environment" {
  type = string
}

variable "region" {
  type = string
}

variable "project_name" {
  type = string
}

variable "model_package_group_name" {
  type = string
}

variable "model_package_arn" {
  type = string
}

variable "source_model_package_arn" {
  type = string
}

variable "model_version" {
  type = number
}

variable "model_name" {
  type = string
}

variable "previous_model" {
  type = object({
    model_name               = string
    model_package_arn        = string
    source_model_package_arn = string
    model_version            = number
  })
}

variable "endpoint_config_in_service" {
  type = object({
    name = string
    spec = object({
      model_name             = string
      model_package_arn      = string
      model_version          = number
      kms_key_arn            = string
      instance_type          = string
      initial_instance_count = number
      serverless = object({
        memory_size_in_mb = number
        max_concurrency   = number
      })
      capture_percentage  = number
      capture_destination = string
      capture_kms_key_arn = string
    })
  })
}

variable "image_repository_arns" {
  type = list(string)
}

variable "artifacts_bucket" {
  type = string
}

variable "sagemaker_role_arn" {
  type = string
}

variable "upload_starter_role_arn" {
  type = string
}

variable "kms_key_arn" {
  type = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "security_group_ids" {
  type = list(string)
}

variable "shadow_role_arn" {
  description = "The shadow run's execution role (infra/target-account); null: no shadow pipeline."
  type        = string
  default     = null
}

variable "shadow_pipeline_name" {
  description = "The shadow run's pipeline: <pipeline_name>-shadow."
  type        = string
  default     = null
}

variable "shadow_pipeline_definition_s3_key" {
  description = "The shadow pipeline's definition: the stage's, its jobs' RoleArn the shadow role's."
  type        = string
  default     = null
}

variable "pipeline_name" {
  type = string
}

variable "pipeline_definition_s3_key" {
  type = string
}

variable "job_steps" {
  type = map(object({
    type            = string
    job_name_prefix = string
  }))
}

variable "partition_format" {
  type = string
}

variable "input_data_url" {
  type = string
}

variable "external_inputs" {
  type = list(object({
    url         = string
    account_id  = string
    kms_key_arn = optional(string)
  }))
}

variable "output_data_url" {
  type = string
}

variable "feature_schema_url" {
  type = string
}

variable "schedule_expression" {
  type = string
}

variable "processing_instance_type" {
  type = string
}

variable "processing_instance_count" {
  type = number
}

variable "transform_instance_type" {
  type = string
}

variable "transform_instance_count" {
  type = number
}

variable "max_rejected_fraction" {
  type = number
}

variable "max_drift_score" {
  type = number
}

variable "quality_gate_mode" {
  type = string
}

variable "max_quality_drop" {
  type = number
}

variable "baseline_url" {
  type = string
}

variable "run_on_upload" {
  type = bool
}

variable "schedule_starter_zip" {
  type = string
}

variable "upload_starter_zip" {
  type = string
}

variable "upload_max_running" {
  type = number
}

variable "upload_max_wait_hours" {
  type = number
}

variable "instance_prices" {
  description = "USD per instance-hour over the template's price table (stage_runtime/sagemaker_prices.json), for each run's cost."
  type        = map(number)
}

variable "alarm_email" {
  type = string
}

variable "score_by_hours" {
  type = number
}

variable "freshness_alarms" {
  type = bool
}

variable "endpoint" {
  type = object({
    enabled                         = optional(bool, true)
    instance_type                   = optional(string, "ml.m5.large")
    min_instance_count              = optional(number, 1)
    max_instance_count              = optional(number, 2)
    target_invocations_per_instance = optional(number, 100)
    scale_in_cooldown_seconds       = optional(number, 300)
    serverless = optional(object({
      memory_size_in_mb = number
      max_concurrency   = number
      # AWS's Serverless Inference supports neither network isolation nor a VPC: the stage
      # file must say it accepts a serverless endpoint whose container can reach the network
      without_network_isolation = optional(bool, false)
    }))
    data_capture = optional(object({
      enabled             = optional(bool, true)
      sampling_percentage = optional(number, 10)
    }))
    latency_p99_threshold_ms = optional(number, 1000)
    alarm_on_no_invocations  = optional(bool, false)
  })
}

variable "predictions_table_url" {
  type = string
}

variable "predictions_table_columns" {
  type = list(object({ name = string, type = string }))
}

variable "output_format" {
  type = string
}

variable "quality_pipeline_name" {
  type = string
}

variable "quality_pipeline_definition_s3_key" {
  type = string
}

variable "labels_url" {
  type = string
}
