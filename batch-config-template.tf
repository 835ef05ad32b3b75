# One stage's batch-inference resources: the SageMaker model promoted by build.py, the
# pipeline whose definition build.py uploaded, the schedule that starts it with that model,
# and a dashboard and alarms to review the runs.
#
# Inputs: build/<stage>.tfvars.json, written by build.py (the stage file's keys plus what it
# resolved). Every variable below is exactly one of those keys; a test checks both ways.

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
  description = "S3 prefix the scheduled run scores."
  type        = string
  validation {
    condition     = can(regex("^s3://", var.input_data_url))
    error_message = "input_data_url must be an s3:// URI."
  }
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

# ----------------------------------------------------------------------------- resources

locals {
  name = "${var.project_name}-${var.environment}"
  tags = {
    "sagemaker:project-name" = var.project_name
    "sagemaker:project-id"   = var.project_id
    environment              = var.environment
  }
  # What SageMaker publishes per job instance (Host = "<job name>/algo-N" for Processing,
  # "<job name>/<instance id>" for Transform); Transform jobs publish no DiskUtilization.
  job_metrics = {
    Processing = { namespace = "/aws/sagemaker/ProcessingJobs", metrics = ["CPUUtilization", "MemoryUtilization", "DiskUtilization"] }
    Transform  = { namespace = "/aws/sagemaker/TransformJobs", metrics = ["CPUUtilization", "MemoryUtilization"] }
  }
  job_series = flatten([
    for step, job in var.job_steps : [
      for metric in local.job_metrics[job.type].metrics : { step = step, namespace = local.job_metrics[job.type].namespace, metric = metric, prefix = job.job_name_prefix }
    ]
  ])
  # AWS managed keys (aws/sqs, aws/sns) cannot be used by EventBridge or CloudWatch alarms,
  # so without the stage's key the queues and the topic get a key of their own.
  kms_key_arn  = var.kms_key_arn != null ? var.kms_key_arn : aws_kms_key.fallback[0].arn
  input_bucket = regex("^s3://([^/]+)/?(.*)$", var.input_data_url)[0]
  input_prefix = regex("^s3://([^/]+)/?(.*)$", var.input_data_url)[1]
  # prefixes compared and matched as folders: "p/data" and "p/data/" are the same input, and
  # neither contains "p/data-out/"
  pipeline_parameters = {
    ModelName               = aws_sagemaker_model.batch[var.model_name].name
    InputDataUrl            = var.input_data_url
    OutputDataUrl           = var.output_data_url
    FeatureSchemaUrl        = var.feature_schema_url
    ProcessingInstanceType  = var.processing_instance_type
    ProcessingInstanceCount = tostring(var.processing_instance_count)
    TransformInstanceType   = var.transform_instance_type
    TransformInstanceCount  = tostring(var.transform_instance_count)
    MaxRejectedFraction     = tostring(var.max_rejected_fraction)
    MaxDriftScore           = tostring(var.max_drift_score)
    QualityGateMode         = var.quality_gate_mode
  }
  # Preprocess prints one JSON line per run and instance ("event": "batch-quality"), the
  # sample model's handlers one per Transform request ("batch-predictions"); these filters
  # on the jobs' log groups make them metrics per pipeline (jobs run network-isolated, so
  # they cannot call CloudWatch themselves). DriftScore only when a baseline was measured.
  quality_namespace = "BatchInference/Quality"
  # A metric's value field must be matched by its filter's pattern (AWS: "If you are using a
  # field value, the field value must have been matched using the pattern"), hence ">= 0"
  # (or "= *" for a sum that may be negative): a run without a baseline has no drift_score
  # and publishes no DriftScore.
  quality_metrics = {
    RowsRead         = { value = "$.rows_read", unit = "Count", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    RowsRejected     = { value = "$.rows_rejected", unit = "Count", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    RowsScored       = { value = "$.rows_scored", unit = "Count", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    RejectedFraction = { value = "$.rejected_fraction", unit = "None", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    DriftScore       = { value = "$.drift_score", unit = "None", match = ">= 0", event = "batch-quality", log_group = "/aws/sagemaker/ProcessingJobs" }
    PredictionCount  = { value = "$.count", unit = "Count", match = ">= 0", event = "batch-predictions", log_group = "/aws/sagemaker/TransformJobs" }
    PredictionSum    = { value = "$.sum", unit = "None", match = "= *", event = "batch-predictions", log_group = "/aws/sagemaker/TransformJobs" }
    # the schedule's function: 1 per day it found without data (0 for the others)
    EmptyDays = { value = "$.empty", unit = "Count", match = ">= 0", event = "partition-run", log_group = "/aws/lambda/${local.schedule_function}" }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

resource "aws_kms_key" "fallback" {
  count               = var.kms_key_arn == null ? 1 : 0
  description         = "${local.name} batch-inference queues and alarm topic"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheKey"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "AlarmsPublishToTheEncryptedTopic"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
      },
      {
        # no aws:SourceAccount: EventBridge's KMS calls for encrypted queues do not carry it
        Sid       = "EventBridgeSendsToTheEncryptedQueues"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
      {
        Sid       = "TheUploadFunctionReadsAndRefusesMessages"
        Effect    = "Allow"
        Principal = { AWS = var.upload_starter_role_arn }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
      },
      {
        # every log group the template encrypts with local.kms_key_arn: its three functions'
        Sid       = "LogsEncryptTheFunctionsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = { ArnLike = { "kms:EncryptionContext:aws:logs:arn" = [for f in [local.schedule_function, local.outcome_function, local.upload_function] : "arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/aws/lambda/${f}"] } }
      },
    ]
  })
}

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
  key          = "${var.project_name}/deployments/${var.environment}/deployed-model.json"
  content_type = "application/json"
  content = jsonencode({
    current  = merge(local.deployed_model, { endpoint_config = local.endpoint == null ? null : { name = local.endpoint_config_name, spec = local.endpoint_config_spec } })
    previous = var.previous_model
  })
  kms_key_id = var.kms_key_arn

  # written last: only a deployment that got everything it claims (the endpoint serving the
  # new version among it) may become the next promotion's previous_model
  depends_on = [
    aws_sagemaker_pipeline.batch, aws_cloudwatch_event_target.schedule, aws_cloudwatch_event_target.outcome,
    aws_cloudwatch_event_target.upload_queue, aws_lambda_event_source_mapping.uploads,
    aws_sagemaker_endpoint.realtime, aws_appautoscaling_policy.endpoint, aws_cloudwatch_metric_alarm.stage,
    aws_cloudwatch_metric_alarm.endpoint, aws_cloudwatch_log_metric_filter.quality, aws_cloudwatch_dashboard.batch,
  ]
}

resource "aws_sagemaker_pipeline" "batch" {
  pipeline_name         = var.pipeline_name
  pipeline_display_name = var.pipeline_name
  role_arn              = var.sagemaker_role_arn

  # the key is content-addressed: it changes exactly when the definition does, and then the
  # update sends the new location
  pipeline_definition_s3_location {
    bucket     = var.artifacts_bucket
    object_key = var.pipeline_definition_s3_key
  }

  # Provider 5.x reads the definition's text back into pipeline_definition (optional, not
  # computed), so without this every later plan would set it to null and the update would
  # send an empty PipelineDefinition beside the S3 location, which AWS refuses
  # (hashicorp/terraform-provider-aws#38259). Ignored, the update sends the location alone.
  lifecycle {
    ignore_changes = [pipeline_definition]
  }
}

resource "aws_cloudwatch_event_rule" "schedule" {
  name                = "${local.name}-batch-inference"
  description         = "Starts ${var.pipeline_name} with model ${var.model_name} on the day's input partition (through ${local.schedule_function})."
  schedule_expression = var.schedule_expression
}

resource "aws_sqs_queue" "schedule_dlq" {
  name                              = "${local.name}-batch-inference-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue_policy" "schedule_dlq" {
  queue_url = aws_sqs_queue.schedule_dlq.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.schedule_dlq.arn
      Condition = { ArnEquals = { "aws:SourceArn" = concat([aws_cloudwatch_event_rule.schedule.arn, aws_cloudwatch_event_rule.run_ended.arn], aws_cloudwatch_event_rule.upload[*].arn) } }
    }]
  })
}

# The schedule starts the function, not the pipeline: each night it scores the day's
# partition exactly once (lambdas/start_scheduled_run, stage_runtime/partitions.py), records a
# day without data as empty without a run, and looks again at the days before it.
locals {
  schedule_function = "${local.name}-start-scheduled-run"
  # earlier days each scheduled run looks at: retries their failed runs, completes their
  # markers, scores data that arrived late
  schedule_lookback_days = 2
}

resource "aws_cloudwatch_log_group" "schedule_function" {
  name              = "/aws/lambda/${local.schedule_function}"
  retention_in_days = 365 # what happened to each day, for a year
  kms_key_id        = local.kms_key_arn
}

resource "aws_lambda_function" "schedule" {
  #checkov:skip=CKV_AWS_117:calls only AWS APIs (S3, SageMaker); a VPC would need endpoints for each
  #checkov:skip=CKV_AWS_115:reserved concurrency would fail in new accounts (unreserved must stay >= 10); one rule invokes it
  #checkov:skip=CKV_AWS_173:no secret in its environment (names and URIs); AWS encrypts it at rest
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile; the zip is built reproducibly by build.py
  function_name    = local.schedule_function
  description      = "Schedule of ${local.name}: starts the stage's pipeline on each day's input partition, exactly once."
  role             = var.upload_starter_role_arn # the stage's run-starter role (infra/target-account)
  runtime          = "python3.12"
  handler          = "handler.handler"
  filename         = var.schedule_starter_zip
  source_code_hash = filebase64sha256(var.schedule_starter_zip)
  timeout          = 120
  memory_size      = 128
  depends_on       = [aws_cloudwatch_log_group.schedule_function]

  environment {
    variables = {
      PIPELINE_NAME       = aws_sagemaker_pipeline.batch.pipeline_name
      PIPELINE_PARAMETERS = jsonencode({ for k, v in local.pipeline_parameters : k => v if !contains(["InputDataUrl", "OutputDataUrl"], k) })
      INPUT_DATA_URL      = var.input_data_url
      OUTPUT_DATA_URL     = var.output_data_url
      PARTITION_FORMAT    = var.partition_format
      KMS_KEY_ARN         = var.kms_key_arn == null ? "" : var.kms_key_arn
      LOOKBACK_DAYS       = tostring(local.schedule_lookback_days)
    }
  }

  # an invocation that still fails after Lambda's two retries lands with the rule's own
  # undeliverable events (alarmed)
  dead_letter_config {
    target_arn = aws_sqs_queue.schedule_dlq.arn
  }

  tracing_config {
    mode = "PassThrough"
  }
}

resource "aws_lambda_permission" "schedule" {
  statement_id  = "TheScheduleRuleInvokes"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.schedule.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule.arn
}

resource "aws_cloudwatch_event_target" "schedule" {
  rule = aws_cloudwatch_event_rule.schedule.name
  arn  = aws_lambda_function.schedule.arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 5
  }

  dead_letter_config {
    arn = aws_sqs_queue.schedule_dlq.arn
  }
}

# When a run ends (any final status), its day's or uploaded object's marker is completed at
# once (rows read, rejected, scored, or the failure): SageMaker's status change event -> rule
# -> function (lambdas/record_run_outcome, shipped in the schedule function's zip). Without
# it a day's marker is completed at the next look at the day, an upload's never.
locals {
  outcome_function = "${local.name}-record-run-outcome"
}

resource "aws_cloudwatch_event_rule" "run_ended" {
  name        = "${local.name}-run-ended"
  description = "Records how each run of ${var.pipeline_name} ended in its day's or object's marker (through ${local.outcome_function})."
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Status Change"]
    detail = {
      pipelineArn                    = [aws_sagemaker_pipeline.batch.arn]
      currentPipelineExecutionStatus = ["Succeeded", "Failed", "Stopped", "CompletedWithFailures"]
    }
  })
}

resource "aws_cloudwatch_log_group" "outcome_function" {
  name              = "/aws/lambda/${local.outcome_function}"
  retention_in_days = 365
  kms_key_id        = local.kms_key_arn
}

resource "aws_lambda_function" "outcome" {
  #checkov:skip=CKV_AWS_117:calls only AWS APIs (S3, SageMaker); a VPC would need endpoints for each
  #checkov:skip=CKV_AWS_115:reserved concurrency would fail in new accounts (unreserved must stay >= 10); one rule invokes it
  #checkov:skip=CKV_AWS_173:no secret in its environment (names and URIs); AWS encrypts it at rest
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile; the zip is built reproducibly by build.py
  function_name    = local.outcome_function
  description      = "Records how each run of ${local.name}'s pipeline ended in its day's or uploaded object's marker."
  role             = var.upload_starter_role_arn # the stage's run-starter role (infra/target-account)
  runtime          = "python3.12"
  handler          = "record_run_outcome.handler"
  filename         = var.schedule_starter_zip # the schedule's zip carries it (lambdas/package.py)
  source_code_hash = filebase64sha256(var.schedule_starter_zip)
  timeout          = 60
  memory_size      = 128
  depends_on       = [aws_cloudwatch_log_group.outcome_function]

  environment {
    variables = {
      INPUT_DATA_URL   = var.input_data_url
      OUTPUT_DATA_URL  = var.output_data_url
      PARTITION_FORMAT = var.partition_format
      KMS_KEY_ARN      = var.kms_key_arn == null ? "" : var.kms_key_arn
    }
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.schedule_dlq.arn
  }

  tracing_config {
    mode = "PassThrough"
  }
}

resource "aws_lambda_permission" "outcome" {
  statement_id  = "TheRunEndedRuleInvokes"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.outcome.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.run_ended.arn
}

resource "aws_cloudwatch_event_target" "outcome" {
  rule = aws_cloudwatch_event_rule.run_ended.name
  arn  = aws_lambda_function.outcome.arn

  retry_policy {
    maximum_event_age_in_seconds = 3600
    maximum_retry_attempts       = 5
  }

  dead_letter_config {
    arn = aws_sqs_queue.schedule_dlq.arn
  }
}

# ----------------------------------------------------------------- run on upload (optional)
# S3 "Object Created" under the input prefix -> rule -> FIFO queue (the event unchanged, one
# message group) -> function (lambdas/start_upload_run) -> pipeline on exactly that object.
# The function refuses what must not run (folder markers, vanished objects, keys that other
# objects extend) into the refused-uploads queue, and holds the queue while
# upload_max_running runs are executing: a burst of uploads drains at the pipeline's pace.
# Not an EventBridge Pipe: a pipe to SageMaker cannot batch, cap concurrency or build the
# object's URI without an input transformer, which inserts the key into JSON unescaped.

locals {
  upload_function = "${local.name}-start-upload-run"
  # the function's timeout; SQS's visibility timeout is six times it (Lambda's guidance)
  upload_timeout_seconds    = 30
  upload_visibility_seconds = 6 * local.upload_timeout_seconds
}

resource "aws_cloudwatch_event_rule" "upload" {
  count = var.run_on_upload ? 1 : 0
  lifecycle {
    # an empty prefix would start a run for every object written to the bucket, its outputs
    # included: a loop (outputs under the input prefix: output_data_url's validation)
    precondition {
      condition     = trimsuffix(local.input_prefix, "/") != ""
      error_message = "run_on_upload needs input_data_url to be a prefix inside its bucket, not the bucket root."
    }
  }
  name        = "${local.name}-on-upload"
  description = "Queues a run of ${var.pipeline_name} for each object uploaded under ${var.input_data_url}."
  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [local.input_bucket] }
      # empty objects (folder markers made by the console among them) have nothing to score
      object = { key = [{ prefix = "${trimsuffix(local.input_prefix, "/")}/" }], size = [{ numeric = [">", 0] }] }
    }
  })
}

resource "aws_sqs_queue" "uploads" {
  count                             = var.run_on_upload ? 1 : 0
  name                              = "${local.name}-batch-inference-uploads.fifo"
  fifo_queue                        = true
  content_based_deduplication       = true
  message_retention_seconds         = 345600
  visibility_timeout_seconds        = local.upload_visibility_seconds
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.refused_uploads[0].arn
    maxReceiveCount     = var.upload_max_wait_hours * 3600 / local.upload_visibility_seconds
  })
}

# uploads the function refused, and those that waited longer than upload_max_wait_hours
resource "aws_sqs_queue" "refused_uploads" {
  count                             = var.run_on_upload ? 1 : 0
  name                              = "${local.name}-batch-inference-refused-uploads.fifo"
  fifo_queue                        = true
  message_retention_seconds         = 1209600
  kms_master_key_id                 = local.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue_policy" "uploads" {
  count     = var.run_on_upload ? 1 : 0
  queue_url = aws_sqs_queue.uploads[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.uploads[0].arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.upload[0].arn } }
    }]
  })
}

resource "aws_cloudwatch_event_target" "upload_queue" {
  count = var.run_on_upload ? 1 : 0
  rule  = aws_cloudwatch_event_rule.upload[0].name
  arn   = aws_sqs_queue.uploads[0].arn

  # one group: the function sees one upload at a time, in order, so its count of running
  # executions cannot race with itself
  sqs_target {
    message_group_id = "uploads"
  }

  dead_letter_config {
    arn = aws_sqs_queue.schedule_dlq.arn
  }
}

resource "aws_cloudwatch_log_group" "upload_function" {
  count             = var.run_on_upload ? 1 : 0
  name              = "/aws/lambda/${local.upload_function}"
  retention_in_days = 90
  kms_key_id        = local.kms_key_arn
}

resource "aws_lambda_function" "upload" {
  #checkov:skip=CKV_AWS_116:the SQS event source's redrive policy is the dead-letter queue (refused uploads)
  #checkov:skip=CKV_AWS_117:calls only AWS APIs (S3, SageMaker, SQS); a VPC would need endpoints for each
  #checkov:skip=CKV_AWS_115:reserved concurrency would fail in new accounts (unreserved must stay >= 10); the FIFO group already serialises it
  #checkov:skip=CKV_AWS_173:no secret in its environment (names and URIs); AWS encrypts it at rest
  #checkov:skip=CKV_AWS_272:code signing needs a signing profile; the zip is built reproducibly by build.py
  count            = var.run_on_upload ? 1 : 0
  function_name    = local.upload_function
  description      = "Run on upload for ${local.name}: starts the stage's pipeline on each uploaded input object, at most ${var.upload_max_running} runs at a time."
  role             = var.upload_starter_role_arn
  runtime          = "python3.12"
  handler          = "handler.handler"
  filename         = var.upload_starter_zip
  source_code_hash = filebase64sha256(var.upload_starter_zip)
  timeout          = local.upload_timeout_seconds
  memory_size      = 128
  depends_on       = [aws_cloudwatch_log_group.upload_function]

  environment {
    variables = {
      PIPELINE_NAME       = aws_sagemaker_pipeline.batch.pipeline_name
      PIPELINE_PARAMETERS = jsonencode({ for k, v in local.pipeline_parameters : k => v if k != "InputDataUrl" })
      INPUT_BUCKET        = local.input_bucket
      INPUT_PREFIX        = "${trimsuffix(local.input_prefix, "/")}/"
      MAX_RUNNING         = tostring(var.upload_max_running)
      REFUSED_QUEUE_URL   = aws_sqs_queue.refused_uploads[0].id
      PARTITION_FORMAT    = var.partition_format                           # uploads into a day's partition: the schedule's
      KMS_KEY_ARN         = var.kms_key_arn == null ? "" : var.kms_key_arn # the objects' markers
    }
  }

  tracing_config {
    mode = "PassThrough"
  }
}

resource "aws_lambda_event_source_mapping" "uploads" {
  count            = var.run_on_upload ? 1 : 0
  event_source_arn = aws_sqs_queue.uploads[0].arn
  function_name    = aws_lambda_function.upload[0].arn
  batch_size       = 1
}

# ----------------------------------------------------------------------------- alarms

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-batch-inference-alarms"
  kms_master_key_id = local.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# The stage's alarms share one shape (a metric over 5 minutes above a threshold, missing data
# not breaching, notifying the topic), so one resource makes them all; each key names its
# alarm: <name>-batch-inference-<key, with dashes>.
locals {
  alarms = merge(
    {
      failed = {
        description = "A run of ${var.pipeline_name} failed."
        namespace   = "AWS/Sagemaker/ModelBuildingPipeline"
        metric      = "ExecutionFailed"
        dimension   = "PipelineName"
        watched     = aws_sagemaker_pipeline.batch.pipeline_name
        statistic   = "Sum"
        threshold   = 0
        notify_ok   = true
      }
      not_started = {
        description = "The schedule could not start ${var.pipeline_name}."
        namespace   = "AWS/Events"
        metric      = "FailedInvocations"
        dimension   = "RuleName"
        watched     = aws_cloudwatch_event_rule.schedule.name
        statistic   = "Sum"
        threshold   = 0
        notify_ok   = false
      }
      dead_letters = {
        description = "Runs of ${var.pipeline_name} that could not be started or recorded are waiting in ${aws_sqs_queue.schedule_dlq.name}."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimension   = "QueueName"
        watched     = aws_sqs_queue.schedule_dlq.name
        statistic   = "Maximum"
        threshold   = 0
        notify_ok   = false
      }
    },
    {
      rejected_rows = {
        description = "A run of ${var.pipeline_name} rejected more than ${var.max_rejected_fraction * 100} % of its rows (gate mode ${var.quality_gate_mode}): see the run's rejected/ output."
        namespace   = local.quality_namespace
        metric      = aws_cloudwatch_log_metric_filter.quality["RejectedFraction"].metric_transformation[0].name
        dimension   = "PipelineName"
        watched     = aws_sagemaker_pipeline.batch.pipeline_name
        statistic   = "Maximum"
        threshold   = var.max_rejected_fraction
        notify_ok   = false
      }
      drift = {
        description = "A run of ${var.pipeline_name} drifted from the model's baseline: a feature's PSI over ${var.max_drift_score} (gate mode ${var.quality_gate_mode}); the run's summary names the features (baseline: ${coalesce(var.baseline_url, "none")})."
        namespace   = local.quality_namespace
        metric      = aws_cloudwatch_log_metric_filter.quality["DriftScore"].metric_transformation[0].name
        dimension   = "PipelineName"
        watched     = aws_sagemaker_pipeline.batch.pipeline_name
        statistic   = "Maximum"
        threshold   = var.max_drift_score
        notify_ok   = false
      }
    },
    var.run_on_upload ? {
      upload_not_queued = {
        description = "An upload under ${var.input_data_url} could not be queued for a run."
        namespace   = "AWS/Events"
        metric      = "FailedInvocations"
        dimension   = "RuleName"
        watched     = one(aws_cloudwatch_event_rule.upload[*].name)
        statistic   = "Sum"
        threshold   = 0
        notify_ok   = false
      }
      refused_uploads = {
        description = "Uploads under ${var.input_data_url} that did not start a run (refused, or waited over ${var.upload_max_wait_hours} h) are in ${one(aws_sqs_queue.refused_uploads[*].name)}; each has a reason attribute."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimension   = "QueueName"
        watched     = one(aws_sqs_queue.refused_uploads[*].name)
        statistic   = "Maximum"
        threshold   = 0
        notify_ok   = false
      }
      uploads_waiting = {
        description = "The oldest upload under ${var.input_data_url} has waited over an hour for a run: runs are slow, failing to start, or upload_max_running is too low."
        namespace   = "AWS/SQS"
        metric      = "ApproximateAgeOfOldestMessage"
        dimension   = "QueueName"
        watched     = one(aws_sqs_queue.uploads[*].name)
        statistic   = "Maximum"
        threshold   = 3600
        notify_ok   = false
      }
    } : {}
  )
}

resource "aws_cloudwatch_log_metric_filter" "quality" {
  for_each       = local.quality_metrics
  depends_on     = [aws_cloudwatch_log_group.schedule_function]
  name           = "${local.name}-batch-inference-${each.key}"
  log_group_name = each.value.log_group
  pattern        = "{ $.event = \"${each.value.event}\" && $.pipeline = \"${aws_sagemaker_pipeline.batch.pipeline_name}\" && ${each.value.value} ${each.value.match} }"
  metric_transformation {
    namespace  = local.quality_namespace
    name       = each.key
    value      = each.value.value
    unit       = each.value.unit
    dimensions = { PipelineName = "$.pipeline" }
  }
}

resource "aws_cloudwatch_metric_alarm" "stage" {
  for_each            = local.alarms
  alarm_name          = "${local.name}-batch-inference-${replace(each.key, "_", "-")}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = { (each.value.dimension) = each.value.watched }
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = each.value.notify_ok ? [aws_sns_topic.alarms.arn] : null
}

# The alarms' addresses before they were one resource: a stage deployed earlier keeps its
# alarms (Terraform moves them in state; nothing is replaced).
moved {
  from = aws_cloudwatch_metric_alarm.failed_executions
  to   = aws_cloudwatch_metric_alarm.stage["failed"]
}

moved {
  from = aws_cloudwatch_metric_alarm.failed_invocations
  to   = aws_cloudwatch_metric_alarm.stage["not_started"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dead_letters
  to   = aws_cloudwatch_metric_alarm.stage["dead_letters"]
}

moved {
  from = aws_cloudwatch_metric_alarm.upload_failed_invocations[0]
  to   = aws_cloudwatch_metric_alarm.stage["upload_not_queued"]
}

moved {
  from = aws_cloudwatch_metric_alarm.refused_uploads[0]
  to   = aws_cloudwatch_metric_alarm.stage["refused_uploads"]
}

moved {
  from = aws_cloudwatch_metric_alarm.uploads_waiting[0]
  to   = aws_cloudwatch_metric_alarm.stage["uploads_waiting"]
}

resource "aws_cloudwatch_dashboard" "batch" {
  dashboard_name = "${local.name}-batch-inference"
  dashboard_body = jsonencode({
    widgets = concat([
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title   = "Pipeline executions"
          region  = var.region
          stat    = "Sum"
          period  = 3600
          metrics = [for m in ["ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed", "ExecutionStopped"] : ["AWS/Sagemaker/ModelBuildingPipeline", m, "PipelineName", var.pipeline_name]]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Execution duration and step failures"
          region = var.region
          period = 3600
          # step metrics are published per PipelineName and StepName: one series per step
          metrics = concat(
            [["AWS/Sagemaker/ModelBuildingPipeline", "ExecutionDuration", "PipelineName", var.pipeline_name, { stat = "Maximum" }]],
            [for step in sort(keys(var.job_steps)) : ["AWS/Sagemaker/ModelBuildingPipeline", "StepFailed", "PipelineName", var.pipeline_name, "StepName", step, { stat = "Sum", label = "${step} failed" }]],
          )
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Jobs: CPU, memory, disk (per instance)"
          region = var.region
          stat   = "Maximum"
          period = 300
          # the phrase in quotes matches this stage's job names, whatever SageMaker appends
          metrics = [for i, s in local.job_series : [{ id = "j${i}", label = "${s.step} ${s.metric}", expression = "SEARCH('{${s.namespace},Host} MetricName=\"${s.metric}\" \"${s.prefix}\"', 'Maximum', 300)" }]]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Schedule: invocations, failed invocations, days without data"
          region = var.region
          stat   = "Sum"
          period = 3600
          metrics = concat(
            [for m in ["Invocations", "FailedInvocations"] : ["AWS/Events", m, "RuleName", aws_cloudwatch_event_rule.schedule.name]],
            [[local.quality_namespace, aws_cloudwatch_log_metric_filter.quality["EmptyDays"].metric_transformation[0].name, "PipelineName", var.pipeline_name]],
          )
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title  = "Batch quality: rows read, rejected, scored"
          region = var.region
          stat   = "Sum"
          period = 3600
          metrics = [for m in ["RowsRead", "RowsRejected", "RowsScored"] :
          [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality[m].metric_transformation[0].name, "PipelineName", var.pipeline_name]]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title  = "Batch quality: rejected fraction and drift (largest PSI) against the gate (${var.quality_gate_mode})"
          region = var.region
          stat   = "Maximum"
          period = 3600
          metrics = [for m in ["RejectedFraction", "DriftScore"] :
          [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality[m].metric_transformation[0].name, "PipelineName", var.pipeline_name]]
          annotations = { horizontal = [
            { label = "MaxRejectedFraction", value = var.max_rejected_fraction },
            { label = "MaxDriftScore", value = var.max_drift_score },
          ] }
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 24, height = 6
        properties = {
          title  = "Predictions: how many, and their mean (from the model's handlers' metric lines)"
          region = var.region
          period = 3600
          metrics = [
            [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality["PredictionCount"].metric_transformation[0].name, "PipelineName", var.pipeline_name, { id = "count", stat = "Sum", label = "predictions" }],
            [local.quality_namespace, aws_cloudwatch_log_metric_filter.quality["PredictionSum"].metric_transformation[0].name, "PipelineName", var.pipeline_name, { id = "total", stat = "Sum", visible = false }],
            [{ id = "mean", expression = "total / count", label = "prediction mean", yAxis = "right" }],
          ]
        }
      },
      {
        type = "log", x = 0, y = 24, width = 24, height = 6
        properties = {
          title  = "Errors in the jobs' logs"
          region = var.region
          query  = "SOURCE '/aws/sagemaker/ProcessingJobs' | SOURCE '/aws/sagemaker/TransformJobs' | fields @timestamp, @logStream, @message | filter @message like /(?i)(error|exception|traceback)/ | sort @timestamp desc | limit 100"
        }
      },
      ], var.run_on_upload ? [
      {
        type = "metric", x = 0, y = 30, width = 24, height = 6
        properties = {
          title  = "Run on upload: waiting, refused, oldest wait (s)"
          region = var.region
          period = 300
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.uploads[0].name, { stat = "Maximum", label = "waiting" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.refused_uploads[0].name, { stat = "Maximum", label = "refused" }],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", aws_sqs_queue.uploads[0].name, { stat = "Maximum", label = "oldest wait", yAxis = "right" }],
          ]
        }
      },
    ] : [], local.endpoint_widgets)
  })
}

# ------------------------------------------------------------ real-time endpoint (optional)

# The promoted model online too: the same SageMaker Model the pipeline's Transform uses, so
# batch and real time always serve the same version. Off unless the stage file's endpoint
# block says otherwise (null or enabled = false: nothing below is created).
locals {
  endpoint            = try(var.endpoint.enabled, false) ? var.endpoint : null
  endpoint_serverless = try(local.endpoint.serverless, null) != null
  # what the endpoint serves: the batch model, or its serverless twin (below)
  endpoint_name       = "${local.name}-realtime"
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
    capture_destination    = "s3://${var.artifacts_bucket}/${var.project_name}/data-capture/${var.environment}"
    capture_kms_key_arn    = var.kms_key_arn # null: the bucket's default encryption
  }
  # only what the configuration holds: an alarm or scaling setting changes no fleet
  endpoint_config_name = local.endpoint == null ? null : "${local.name}-v${var.model_version}-${substr(sha256(jsonencode([
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

locals {
  endpoint_widgets = [for widget in [
    {
      type = "metric", x = 0, y = 36, width = 12, height = 6
      properties = {
        title   = "Endpoint ${local.endpoint_name}: invocations and errors"
        region  = var.region
        stat    = "Sum"
        period  = 60
        metrics = [for m in ["Invocations", "Invocation4XXErrors", "Invocation5XXErrors"] : ["AWS/SageMaker", m, "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant]]
      }
    },
    {
      type = "metric", x = 12, y = 36, width = 12, height = 6
      properties = {
        title  = "Endpoint ${local.endpoint_name}: model latency (ms)"
        region = var.region
        period = 60
        metrics = [
          ["AWS/SageMaker", "ModelLatency", "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant, { id = "p50", stat = "p50", visible = false }],
          ["AWS/SageMaker", "ModelLatency", "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant, { id = "p99", stat = "p99", visible = false }],
          [{ id = "p50ms", expression = "p50 / 1000", label = "p50" }],
          [{ id = "p99ms", expression = "p99 / 1000", label = "p99" }],
        ]
        annotations = { horizontal = [{ label = "alarm", value = try(local.endpoint.latency_p99_threshold_ms, 0) }] }
      }
    },
    {
      type = "metric", x = 0, y = 42, width = 24, height = 6
      properties = {
        # no metric counts a variant's instances; each instance publishes CPUUtilization once a
        # minute, so its sample count per minute is the number of instances in service
        title  = local.endpoint_serverless ? "Endpoint ${local.endpoint_name}: serverless concurrency in use" : "Endpoint ${local.endpoint_name}: instances in service (CPUUtilization samples a minute)"
        region = var.region
        period = 60
        metrics = local.endpoint_serverless ? [
          ["AWS/SageMaker", "ServerlessConcurrentExecutionsUtilization", "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant, { stat = "Maximum", label = "concurrency used" }],
          ] : [
          ["/aws/sagemaker/Endpoints", "CPUUtilization", "EndpointName", local.endpoint_name, "VariantName", local.endpoint_variant, { stat = "SampleCount", label = "instances" }],
        ]
      }
    },
  ] : widget if local.endpoint != null]
}

# ----------------------------------------------------------------------------- outputs

output "model_name" {
  value = aws_sagemaker_model.batch[var.model_name].name
}

output "pipeline_arn" {
  value = aws_sagemaker_pipeline.batch.arn
}

output "schedule_rule_arn" {
  value = aws_cloudwatch_event_rule.schedule.arn
}

output "alarm_topic_arn" {
  value = aws_sns_topic.alarms.arn
}

output "upload_function_arn" {
  value = one(aws_lambda_function.upload[*].arn)
}

output "dashboard_name" {
  value = aws_cloudwatch_dashboard.batch.dashboard_name
}

output "endpoint_name" {
  value = one(aws_sagemaker_endpoint.realtime[*].name)
}

output "endpoint_config_name" {
  description = "The configuration this deployment puts the endpoint on (null without an endpoint)."
  value       = local.endpoint_config_name
}
