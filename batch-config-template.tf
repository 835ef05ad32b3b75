# One stage's batch-inference resources: the SageMaker model promoted by build.py, the
# pipeline whose definition build.py uploaded, the schedule that starts it with that model,
# and a dashboard and alarms to review the runs.
#
# Inputs: build/<stage>.tfvars.json, written by build.py (the stage file's keys plus what it
# resolved). Every variable below is exactly one of those keys; a test checks both ways.
#
# This file is the root: the provider, the variables (validated here, once), the call of the
# stage module (terraform/stage, one file per concern), its outputs, and the moved blocks
# that carry a stage deployed before the module existed over to it.

terraform {
  required_version = ">= 1.10" # the S3 backend's use_lockfile
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
  # Partial: bucket, key, region and locking come from `terraform init -backend-config=...`.
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

# ----------------------------------------------------------------------------- variables

variable "environment" {
  description = "Stage name."
  type        = string
  validation {
    condition     = contains(["preprod", "prod"], var.environment)
    error_message = "environment must be preprod or prod."
  }
}

variable "region" {
  description = "AWS region of the stage."
  type        = string
}

variable "project_name" {
  description = "SageMaker project name: prefixes names and SSM parameters."
  type        = string
  # the same rule as infra/: every derived name fits AWS's limits (rule and pipe names: 64)
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-32 lowercase letters, digits and hyphens."
  }
}

variable "project_id" {
  description = "SageMaker project id (may be empty)."
  type        = string
  default     = ""
}

variable "model_package_group_name" {
  description = "Model package group, the same name in dev and in this stage."
  type        = string
}

variable "model_package_arn" {
  description = "The package build.py promoted into this stage's registry."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:model-package/", var.model_package_arn))
    error_message = "model_package_arn must be a SageMaker model package ARN."
  }
}

variable "source_model_package_arn" {
  description = "The dev package it was promoted from (recorded in tags)."
  type        = string
}

variable "model_version" {
  description = "Version of the source package."
  type        = number
  validation {
    condition     = var.model_version >= 1
    error_message = "model_version starts at 1."
  }
}

variable "model_name" {
  description = "Name of the SageMaker model (one per promoted version)."
  type        = string
  validation {
    condition     = can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", var.model_name))
    error_message = "model_name must be 1-63 letters, digits and hyphens."
  }
}

variable "previous_model" {
  description = "The model this stage ran before this deployment (build.py reads it from the deployment record): kept until the next deployment, so runs started with it still find it."
  type = object({
    model_name               = string
    model_package_arn        = string
    source_model_package_arn = string
    model_version            = number
  })
  default = null
}

variable "endpoint_config_in_service" {
  description = "The endpoint configuration the endpoint serves now (build.py reads it from the deployment record): kept until the endpoint serves the new one."
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
  default = null
}

variable "image_repository_arns" {
  description = "The ECR repositories the stage's execution role may pull from: the promoted model's images, the kept model's and the Preprocess step's (written by build.py)."
  type        = list(string)
  validation {
    condition     = length(var.image_repository_arns) > 0 && alltrue([for arn in var.image_repository_arns : can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/[a-z0-9][a-z0-9._/-]*$", arn))])
    error_message = "image_repository_arns must be ECR repository ARNs; build.py writes them from the package's images."
  }
}

variable "artifacts_bucket" {
  description = "The stage's artifact bucket (from SSM)."
  type        = string
}

variable "sagemaker_role_arn" {
  description = "Execution role of the model and the pipeline (from SSM)."
  type        = string
}

variable "shadow_role_arn" {
  description = "The shadow run's execution role (from SSM; null where infra/target-account predates it): the shadow pipeline's jobs and the candidate models run as it, and it writes only under the output's _shadow/ prefix."
  type        = string
  default     = null
}

variable "shadow_pipeline_name" {
  description = "The shadow run's pipeline (the stage pipeline's definition run as shadow_role_arn), written by build.py."
  type        = string
  default     = null
}

variable "shadow_pipeline_definition_s3_key" {
  description = "Content-addressed key of the shadow pipeline's definition build.py uploaded: the stage's definition with the execution role's RoleArn replaced by shadow_role_arn (null without a shadow role)."
  type        = string
  default     = null
  validation {
    condition     = var.shadow_role_arn == null || (var.shadow_pipeline_name != null && var.shadow_pipeline_definition_s3_key != null)
    error_message = "shadow_role_arn needs shadow_pipeline_name and shadow_pipeline_definition_s3_key: run build.py, which writes all three."
  }
}

variable "start_pipeline_role_arn" {
  description = "Role EventBridge could start the pipeline with (from SSM). Unused since the schedule invokes its function, which starts runs as upload_starter_role_arn; kept while the SSM contract provides it."
  type        = string
}

variable "upload_starter_role_arn" {
  description = "Role of the run-on-upload function: reads the upload queue and the input prefix, starts the pipeline (from SSM)."
  type        = string
}

variable "kms_key_arn" {
  description = "The stage's KMS key (from SSM; infra/target-account always writes one). Null creates a key for this stage's queues, topic and function log groups, which needs kms:CreateKey: only for a stage whose base is not infra/target-account, applied by a principal that may create keys (infra/'s deploy role may not)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Subnets for the model's containers; empty runs without a VPC."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups for the model's containers."
  type        = list(string)
  default     = []
}

variable "pipeline_name" {
  description = "Name of the SageMaker pipeline (stable across deployments)."
  type        = string
}

variable "pipeline_definition_s3_key" {
  description = "Content-addressed key of the definition build.py uploaded."
  type        = string
}

variable "quality_pipeline_name" {
  description = "The model-quality pipeline (build.py: the pipeline's name and -quality), which measures each scored day against its delayed labels."
  type        = string
}

variable "quality_pipeline_definition_s3_key" {
  description = "Content-addressed key of the model-quality pipeline's definition build.py uploaded."
  type        = string
}

variable "labels_url" {
  description = "S3 prefix where each day's delayed labels land, one folder per day in partition_format (build.py: <project>/batch-inference/labels/ in the stage bucket)."
  type        = string
  validation {
    condition     = can(regex("^s3://[^/]+/.+/$", var.labels_url))
    error_message = "labels_url must be an s3:// prefix ending in /."
  }
}

variable "job_steps" {
  description = "The pipeline's job steps: step name -> its type and the prefix of its jobs' names (build.py reads them from the definition; the dashboard finds job metrics by them)."
  type = map(object({
    type            = string
    job_name_prefix = string
  }))
  validation {
    condition     = length(var.job_steps) > 0 && alltrue([for s in values(var.job_steps) : contains(["Processing", "Transform"], s.type)])
    error_message = "job_steps must name at least one step, each of type Processing or Transform (build.py writes them)."
  }
}

variable "partition_format" {
  description = "Daily partitions under input_data_url and output_data_url, a strftime pattern with %Y, %m and %d once each: a run for a day reads <input_data_url>/<partition>/ and writes under <output_data_url>/<partition>/, and <output_data_url>/_runs/<partition>.json records what happened to the day (python -m pipelines.run_pipeline --stage ... --date ...)."
  type        = string
  default     = "dt=%Y-%m-%d"
  validation {
    condition     = can(regex("^(?:[A-Za-z0-9=_.-]|%[Ymd])+(?:/(?:[A-Za-z0-9=_.-]|%[Ymd])+)*$", var.partition_format)) && length(split("%Y", var.partition_format)) == 2 && length(split("%m", var.partition_format)) == 2 && length(split("%d", var.partition_format)) == 2
    error_message = "partition_format must be a strftime pattern of folder names with %Y, %m and %d once each, like dt=%Y-%m-%d."
  }
}

variable "input_data_url" {
  description = "S3 prefix the scheduled run scores: in the stage's bucket, or under one of infra/target-account's external_inputs (another bucket, of this or another account, which the stage's roles may read)."
  type        = string
  validation {
    condition     = can(regex("^s3://", var.input_data_url))
    error_message = "input_data_url must be an s3:// URI."
  }
  validation {
    # the roles read nothing else (build.py refuses the same, before promotion)
    condition     = try(regex("^s3://([^/]+)", var.input_data_url)[0], "") == var.artifacts_bucket || anytrue([for i in var.external_inputs : startswith("${trimsuffix(var.input_data_url, "/")}/", i.url)])
    error_message = "input_data_url must be in the stage's bucket or under one of infra/target-account's external_inputs: the stage's roles may read nothing else."
  }
}

variable "external_inputs" {
  description = "The prefixes outside the stage's bucket its roles may read (from SSM: infra/target-account's external_inputs, each with its bucket's owner and key)."
  type = list(object({
    url         = string
    account_id  = string
    kms_key_arn = optional(string)
  }))
  default = []
}

variable "output_data_url" {
  description = "S3 prefix runs write under (one folder per execution)."
  type        = string
  validation {
    condition     = can(regex("^s3://", var.output_data_url))
    error_message = "output_data_url must be an s3:// URI."
  }
  validation {
    condition     = !startswith("${trimsuffix(var.output_data_url, "/")}/", "${trimsuffix(var.input_data_url, "/")}/")
    error_message = "output_data_url must not be inside input_data_url: a run would read earlier runs' outputs as input."
  }
}

variable "predictions_table_url" {
  description = "Where the Publish step writes the stage's predictions table (day=YYYY-MM-DD/ folders), under output_data_url; the Glue table's location (build.py writes it)."
  type        = string
  validation {
    condition     = can(regex("^s3://[^/]+/.+/$", var.predictions_table_url))
    error_message = "predictions_table_url must be an s3:// prefix ending in /."
  }
}

variable "predictions_table_columns" {
  description = "The predictions table's columns in the order Publish writes them: the schema's id, the answer's columns the model package declares (its output_columns metadata), model_version, execution_id (build.py writes them)."
  type        = list(object({ name = string, type = string }))
  validation {
    condition     = length(var.predictions_table_columns) >= 4 && alltrue([for c in var.predictions_table_columns : contains(["string", "double", "bigint"], c.type)])
    error_message = "predictions_table_columns: at least the id, one answer column, model_version and execution_id, each of type string, double or bigint."
  }
}

variable "output_format" {
  description = "The predictions table's file format: csv (with a header) or parquet."
  type        = string
  default     = "csv"
  validation {
    condition     = contains(["csv", "parquet"], var.output_format)
    error_message = "output_format must be csv or parquet."
  }
}

# How BatchTransform sends its requests: build.py writes them into the pipeline definition
# (pipelines/batch_inference/transform_settings.py); Terraform does not read them. null: the
# default for transform_instance_type (README, "Transform requests").
variable "transform_max_concurrent" {
  description = "MaxConcurrentTransforms: requests in flight per Transform instance (null: one per vCPU of transform_instance_type, the serving stack's gunicorn workers)."
  type        = number
  default     = null
  validation {
    condition     = var.transform_max_concurrent == null ? true : (var.transform_max_concurrent >= 1 && var.transform_max_concurrent <= 100 && floor(var.transform_max_concurrent) == var.transform_max_concurrent)
    error_message = "transform_max_concurrent must be a whole number from 1 to 100, or null."
  }
}

variable "transform_max_payload_mb" {
  description = "MaxPayloadInMB: the largest request (null: 6, less when transform_max_concurrent x 6 would pass AWS's 100 MB)."
  type        = number
  default     = null
  validation {
    condition     = var.transform_max_payload_mb == null ? true : (var.transform_max_payload_mb >= 1 && var.transform_max_payload_mb <= 100 && floor(var.transform_max_payload_mb) == var.transform_max_payload_mb)
    error_message = "transform_max_payload_mb must be a whole number from 1 to 100, or null."
  }
  validation {
    # AWS: MaxConcurrentTransforms x MaxPayloadInMB cannot exceed 100 MB (build.py also checks
    # it when the concurrency comes from the instance type)
    condition     = var.transform_max_payload_mb == null || var.transform_max_concurrent == null ? true : var.transform_max_payload_mb * var.transform_max_concurrent <= 100
    error_message = "transform_max_payload_mb x transform_max_concurrent must be 100 MB or less (AWS's limit)."
  }
}

variable "transform_timeout_seconds" {
  description = "ModelClientConfig.InvocationsTimeoutInSeconds: how long one request may take (null: 60, the serving stack's own limit)."
  type        = number
  default     = null
  validation {
    condition     = var.transform_timeout_seconds == null ? true : (var.transform_timeout_seconds >= 1 && var.transform_timeout_seconds <= 3600 && floor(var.transform_timeout_seconds) == var.transform_timeout_seconds)
    error_message = "transform_timeout_seconds must be a whole number from 1 to 3600, or null."
  }
}

variable "transform_max_retries" {
  description = "ModelClientConfig.InvocationsMaxRetries: how often a failed request is sent again (null: 3)."
  type        = number
  default     = null
  validation {
    condition     = var.transform_max_retries == null ? true : (var.transform_max_retries >= 0 && var.transform_max_retries <= 3 && floor(var.transform_max_retries) == var.transform_max_retries)
    error_message = "transform_max_retries must be a whole number from 0 to 3, or null."
  }
}

variable "feature_schema_url" {
  description = "The feature schema Preprocess validates against."
  type        = string
}

variable "schedule_expression" {
  description = "When the pipeline runs: rate(...) or cron(...)."
  type        = string
  default     = "rate(1 day)"
  validation {
    # EventBridge's rules: the unit singular for 1, plural above; a "?" in exactly one of
    # day-of-month and day-of-week (build.py checks each cron field's values too)
    condition     = can(regex("^rate\\((1 (minute|hour|day)|[1-9][0-9]+ (minutes|hours|days)|[2-9] (minutes|hours|days))\\)$", var.schedule_expression)) || can(regex("^cron\\(\\S+ \\S+ (\\? \\S+ [^?\\s]+|[^?\\s]+ \\S+ \\?) \\S+\\)$", var.schedule_expression))
    error_message = "schedule_expression must be rate(N unit), the unit singular for 1 and plural above, or cron(6 fields) with '?' in exactly one of day-of-month and day-of-week."
  }
}

variable "processing_instance_type" {
  description = "Instance type of the Preprocess step."
  type        = string
  validation {
    condition     = can(regex("^ml\\.[a-z0-9]+\\.[a-z0-9]+$", var.processing_instance_type))
    error_message = "processing_instance_type must look like ml.m5.xlarge."
  }
}

variable "processing_instance_count" {
  description = "Instances of the Preprocess step."
  type        = number
  validation {
    condition     = var.processing_instance_count >= 1 && floor(var.processing_instance_count) == var.processing_instance_count
    error_message = "processing_instance_count must be a whole number >= 1."
  }
}

# build.py writes it into the pipeline definition (the ProcessingVolumeSizeInGB parameter's
# default: pipelines/batch_inference/processing_settings.py); Terraform does not read it.
variable "processing_volume_size_gb" {
  description = "VolumeSizeInGB: the storage volume of each Processing instance (Preprocess and Publish). Preprocess stores its share of the day's input and its output there, about 2.2 x that share of input for rows like the sample's: python -m pipelines.capacity --volume-gb G says whether a day fits."
  type        = number
  default     = 30
  validation {
    # ProcessingClusterConfig.VolumeSizeInGB in AWS's API: 1 to 16384
    condition     = var.processing_volume_size_gb >= 1 && var.processing_volume_size_gb <= 16384 && floor(var.processing_volume_size_gb) == var.processing_volume_size_gb
    error_message = "processing_volume_size_gb must be a whole number from 1 to 16384 (AWS's range for VolumeSizeInGB)."
  }
}

variable "transform_instance_type" {
  description = "Instance type of the BatchTransform step."
  type        = string
  validation {
    condition     = can(regex("^ml\\.[a-z0-9]+\\.[a-z0-9]+$", var.transform_instance_type))
    error_message = "transform_instance_type must look like ml.m5.xlarge."
  }
}

variable "transform_instance_count" {
  description = "Instances of the BatchTransform step."
  type        = number
  validation {
    condition     = var.transform_instance_count >= 1 && floor(var.transform_instance_count) == var.transform_instance_count
    error_message = "transform_instance_count must be a whole number >= 1."
  }
}

variable "max_rejected_fraction" {
  description = "Quality gate: the largest share of input rows Preprocess may reject (0 to 1)."
  type        = number
  default     = 0.05
  validation {
    condition     = var.max_rejected_fraction >= 0 && var.max_rejected_fraction <= 1
    error_message = "max_rejected_fraction must be a share from 0 to 1."
  }
}

variable "max_drift_score" {
  description = "Quality gate: the largest population stability index a feature may reach against the model's baseline (0.1 moderate, 0.25 major shift)."
  type        = number
  default     = 0.25
  validation {
    condition     = var.max_drift_score >= 0
    error_message = "max_drift_score must be 0 or more."
  }
}

variable "max_quality_drop" {
  description = "Model quality with delayed labels: the alarm's limit on how much worse a day's headline metric (AUC; RMSE for regression) may be than the package's registered one, as a fraction of it (0.05: 5 % worse)."
  type        = number
  default     = 0.05
  validation {
    condition     = var.max_quality_drop >= 0
    error_message = "max_quality_drop must be a fraction of 0 or more (0.05: alarm when 5 % worse than registered)."
  }
}

variable "quality_gate_mode" {
  description = "Over a quality limit: fail (stop the run before scoring) or warn (score, alarm)."
  type        = string
  default     = "warn"
  validation {
    condition     = contains(["fail", "warn"], var.quality_gate_mode)
    error_message = "quality_gate_mode must be fail or warn."
  }
}

variable "baseline_url" {
  description = "The stage's copy of the model's data-quality baseline (written by build.py); null when the model has none."
  type        = string
  default     = null
}

variable "run_on_upload" {
  description = "Also start the pipeline for each object uploaded under input_data_url, scoring just that object (the bucket must send events to EventBridge; infra/target-account turns that on)."
  type        = bool
  default     = false
}

variable "schedule_starter_zip" {
  description = "The schedule's function package (build.py writes it next to the tfvars)."
  type        = string
}

variable "upload_starter_zip" {
  description = "The run-on-upload function's package (build.py writes it next to the tfvars)."
  type        = string
  default     = null
  validation {
    condition     = !var.run_on_upload || var.upload_starter_zip != null
    error_message = "run_on_upload needs upload_starter_zip, the function's package: run build.py, which writes it with the tfvars."
  }
}

variable "upload_max_running" {
  description = "Runs on upload wait in their queue while this many runs of the pipeline (any trigger) are executing."
  type        = number
  default     = 2
  validation {
    condition     = var.upload_max_running >= 1 && var.upload_max_running <= 50 && floor(var.upload_max_running) == var.upload_max_running
    error_message = "upload_max_running must be a whole number from 1 to 50."
  }
}

variable "upload_max_wait_hours" {
  description = "An upload still waiting for a free run after this long moves to the refused-uploads queue (and its alarm)."
  type        = number
  default     = 12
  validation {
    # maxReceiveCount = hours * 3600 / visibility timeout (180 s) must stay <= 1000
    condition     = var.upload_max_wait_hours >= 1 && var.upload_max_wait_hours <= 48 && floor(var.upload_max_wait_hours) == var.upload_max_wait_hours
    error_message = "upload_max_wait_hours must be a whole number from 1 to 48."
  }
}

variable "smoke_input" {
  description = "A small CSV in this repository that the deployment scores once after applying, before prod is approved (pipelines/smoke_run.py reads it; Terraform does not)."
  type        = string
  default     = null
  validation {
    condition     = var.smoke_input == null || can(regex("^[^/].*\\.csv$", var.smoke_input))
    error_message = "smoke_input must be a repository-relative path to a .csv file, or null."
  }
}

variable "alarm_email" {
  description = "Optional address subscribed to the alarm topic."
  type        = string
  default     = null
}

variable "score_by_hours" {
  description = "When a day must be scored by: hours after its end, UTC (6: by 06:00 the next day). The freshness check reads the day's marker then and alarms with the reason when it is not Succeeded."
  type        = number
  default     = 6
  validation {
    condition     = var.score_by_hours >= 1 && var.score_by_hours <= 72 && floor(var.score_by_hours) == var.score_by_hours
    error_message = "score_by_hours must be a whole number from 1 to 72 (hours after the day's end, UTC)."
  }
  validation {
    # a schedule that fires once a day at HH:MM looks at yesterday then: a deadline before
    # that would find every day late
    condition     = try(var.score_by_hours * 60 > tonumber(regex("^cron\\(([0-9]{1,2}) ([0-9]{1,2}) [*?] \\* [*?] \\*\\)$", var.schedule_expression)[1]) * 60 + tonumber(regex("^cron\\(([0-9]{1,2}) ([0-9]{1,2}) [*?] \\* [*?] \\*\\)$", var.schedule_expression)[0]), true)
    error_message = "score_by_hours must be after the daily schedule's run (schedule_expression's hour and minute, UTC): an earlier deadline finds every day late."
  }
}

variable "freshness_alarms" {
  description = "Whether the stage checks each day at its deadline (score_by_hours) and alarms when it is late, and alarms when the schedule stops running (its dead-man's switch)."
  type        = bool
  default     = true
}

variable "endpoint" {
  description = "Optional real-time endpoint serving the promoted model (null, or enabled = false: nothing is created). Instance-based with auto scaling (instance_type, min/max_instance_count, target_invocations_per_instance a minute), or serverless (serverless = { memory_size_in_mb, max_concurrency, without_network_isolation = true }: AWS runs serverless models without network isolation or VPC); data capture of a sample of requests and answers to the stage bucket; alarm thresholds."
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
  default = null
  validation {
    condition     = var.endpoint == null ? true : can(regex("^ml\\.[a-z0-9]+\\.[a-z0-9]+$", var.endpoint.instance_type))
    error_message = "endpoint.instance_type must be an instance type like ml.m5.large."
  }
  validation {
    condition = var.endpoint == null ? true : (
      floor(var.endpoint.min_instance_count) == var.endpoint.min_instance_count && var.endpoint.min_instance_count >= 1
      && floor(var.endpoint.max_instance_count) == var.endpoint.max_instance_count && var.endpoint.max_instance_count >= var.endpoint.min_instance_count
    )
    error_message = "endpoint.min_instance_count must be a whole number >= 1 and max_instance_count a whole number >= it."
  }
  validation {
    condition     = var.endpoint == null ? true : (var.endpoint.target_invocations_per_instance > 0 && var.endpoint.scale_in_cooldown_seconds >= 0 && var.endpoint.latency_p99_threshold_ms > 0)
    error_message = "endpoint.target_invocations_per_instance and latency_p99_threshold_ms must be > 0, scale_in_cooldown_seconds >= 0."
  }
  validation {
    # SageMaker Serverless Inference: 1024-6144 MB in 1 GB steps, 1-200 concurrent invocations
    condition = try(var.endpoint.serverless, null) == null ? true : (
      contains([1024, 2048, 3072, 4096, 5120, 6144], var.endpoint.serverless.memory_size_in_mb)
      && floor(var.endpoint.serverless.max_concurrency) == var.endpoint.serverless.max_concurrency
      && var.endpoint.serverless.max_concurrency >= 1 && var.endpoint.serverless.max_concurrency <= 200
    )
    error_message = "endpoint.serverless needs memory_size_in_mb of 1024, 2048, 3072, 4096, 5120 or 6144 and a whole max_concurrency from 1 to 200."
  }
  validation {
    condition     = try(var.endpoint.serverless, null) == null ? true : var.endpoint.serverless.without_network_isolation
    error_message = "endpoint.serverless runs without network isolation and outside the stage's VPC (AWS: Serverless Inference supports neither): set endpoint.serverless.without_network_isolation = true to accept that its container can reach the network, or use an instance-based endpoint (remove serverless)."
  }
  validation {
    condition     = try(var.endpoint.data_capture, null) == null ? true : (var.endpoint.data_capture.sampling_percentage >= 1 && var.endpoint.data_capture.sampling_percentage <= 100 && floor(var.endpoint.data_capture.sampling_percentage) == var.endpoint.data_capture.sampling_percentage)
    error_message = "endpoint.data_capture.sampling_percentage must be a whole number from 1 to 100."
  }
  validation {
    condition     = var.endpoint == null ? true : !(var.endpoint.serverless != null && try(var.endpoint.data_capture.enabled, false))
    error_message = "endpoint.data_capture is not available for serverless endpoints (AWS: Serverless Inference does not support data capture); remove one of the two."
  }
}

# ----------------------------------------------------------------------------- the stage

locals {
  # every resource's tags (the provider's default_tags)
  tags = {
    "sagemaker:project-name" = var.project_name
    "sagemaker:project-id"   = var.project_id
    environment              = var.environment
  }
}

variable "instance_prices" {
  description = "On-demand USD per instance-hour by instance type (both jobs), over the template's dated price table (stage_runtime/sagemaker_prices.json): what each run's cost is computed with. {} keeps the table's."
  type        = map(number)
  default     = {}
  nullable    = false
  validation {
    condition     = alltrue([for kind, usd in var.instance_prices : can(regex("^ml\\.[a-z0-9]+\\.[a-z0-9]+$", kind)) && usd > 0 && usd < 1000])
    error_message = "instance_prices maps instance types like ml.m5.xlarge to USD per instance-hour, more than 0 and less than 1000."
  }
}

variable "max_backfill_cost_usd" {
  description = "A backfill (run_pipeline --stage --date --until) whose projected cost is above this many USD is refused without --yes; null: no limit. Read by the CLI from the tfvars."
  type        = number
  default     = null
  validation {
    condition     = var.max_backfill_cost_usd == null ? true : var.max_backfill_cost_usd >= 0
    error_message = "max_backfill_cost_usd must be a number of USD of 0 or more, or null (no limit)."
  }
}

# The shadow run in prod's plan job (pipelines/shadow_run.py --plan-job reads them from the
# tfvars; pipelines/shadow_settings.py): validated here like the offline check, nothing made.
variable "shadow_days" {
  description = "Before prod's approval the candidate version scores the stage's last this many scored days in the shadow pipeline, beside the deployed version, and the plan job's summary shows the comparison (pipelines/shadow_run.py); 0: no shadow run. Read by the CLI from the tfvars."
  type        = number
  default     = 3
  nullable    = false
  validation {
    condition     = var.shadow_days >= 0 && var.shadow_days <= 14 && floor(var.shadow_days) == var.shadow_days
    error_message = "shadow_days must be a whole number from 0 to 14 (0: no shadow run)."
  }
}

variable "shadow_max_flip_rate" {
  description = "The shadow run fails prod's plan job, so the approval cannot be given, when the candidate changes more than this share of a shadowed day's decisions (deploy.yml's accept_shadow_flips input overrides it); null: never fails. Read by the CLI from the tfvars."
  type        = number
  default     = null
  validation {
    condition     = var.shadow_max_flip_rate == null ? true : var.shadow_max_flip_rate >= 0 && var.shadow_max_flip_rate <= 1
    error_message = "shadow_max_flip_rate must be a share from 0 to 1, or null (never fails the plan)."
  }
}

variable "shadow_show_ids" {
  description = "Whether the shadow run's job summary and HTML page, which leave the account for GitHub, show the ids of the rows the two versions disagree on most; false: the ids stay out of them. Read by the CLI from the tfvars."
  type        = bool
  default     = false
  nullable    = false
}

module "stage" {
  source                             = "./terraform/stage"
  environment                        = var.environment
  region                             = var.region
  project_name                       = var.project_name
  model_package_group_name           = var.model_package_group_name
  model_package_arn                  = var.model_package_arn
  source_model_package_arn           = var.source_model_package_arn
  model_version                      = var.model_version
  model_name                         = var.model_name
  previous_model                     = var.previous_model
  endpoint_config_in_service         = var.endpoint_config_in_service
  image_repository_arns              = var.image_repository_arns
  artifacts_bucket                   = var.artifacts_bucket
  sagemaker_role_arn                 = var.sagemaker_role_arn
  shadow_role_arn                    = var.shadow_role_arn
  shadow_pipeline_name               = var.shadow_pipeline_name
  shadow_pipeline_definition_s3_key  = var.shadow_pipeline_definition_s3_key
  upload_starter_role_arn            = var.upload_starter_role_arn
  kms_key_arn                        = var.kms_key_arn
  subnet_ids                         = var.subnet_ids
  security_group_ids                 = var.security_group_ids
  pipeline_name                      = var.pipeline_name
  pipeline_definition_s3_key         = var.pipeline_definition_s3_key
  quality_pipeline_name              = var.quality_pipeline_name
  quality_pipeline_definition_s3_key = var.quality_pipeline_definition_s3_key
  labels_url                         = var.labels_url
  job_steps                          = var.job_steps
  partition_format                   = var.partition_format
  input_data_url                     = var.input_data_url
  external_inputs                    = var.external_inputs
  output_data_url                    = var.output_data_url
  feature_schema_url                 = var.feature_schema_url
  predictions_table_url              = var.predictions_table_url
  predictions_table_columns          = var.predictions_table_columns
  output_format                      = var.output_format
  schedule_expression                = var.schedule_expression
  processing_instance_type           = var.processing_instance_type
  processing_instance_count          = var.processing_instance_count
  transform_instance_type            = var.transform_instance_type
  transform_instance_count           = var.transform_instance_count
  max_rejected_fraction              = var.max_rejected_fraction
  max_drift_score                    = var.max_drift_score
  quality_gate_mode                  = var.quality_gate_mode
  max_quality_drop                   = var.max_quality_drop
  baseline_url                       = var.baseline_url
  run_on_upload                      = var.run_on_upload
  schedule_starter_zip               = var.schedule_starter_zip
  upload_starter_zip                 = var.upload_starter_zip
  upload_max_running                 = var.upload_max_running
  upload_max_wait_hours              = var.upload_max_wait_hours
  instance_prices                    = var.instance_prices
  alarm_email                        = var.alarm_email
  endpoint                           = var.endpoint
  score_by_hours                     = var.score_by_hours
  freshness_alarms                   = var.freshness_alarms
}

# ----------------------------------------------------------------------------- outputs

output "model_name" {
  value = module.stage.model_name
}

output "pipeline_arn" {
  value = module.stage.pipeline_arn
}

output "shadow_pipeline_arn" {
  description = "The shadow run's pipeline (null without a shadow role)."
  value       = module.stage.shadow_pipeline_arn
}

output "schedule_rule_arn" {
  value = module.stage.schedule_rule_arn
}

output "alarm_topic_arn" {
  value = module.stage.alarm_topic_arn
}

output "upload_function_arn" {
  value = module.stage.upload_function_arn
}

output "dashboard_name" {
  value = module.stage.dashboard_name
}

output "endpoint_name" {
  value = module.stage.endpoint_name
}

output "endpoint_config_name" {
  description = "The configuration this deployment puts the endpoint on (null without an endpoint)."
  value       = module.stage.endpoint_config_name
}
