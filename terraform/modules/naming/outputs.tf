# The names of one stage's resources, in one place: the stage module (terraform/stage) names
# what it creates with them, and infra/target-account scopes the deploy role's IAM resources
# and the stage's service roles to them. Names only, no resource and no ARN (each caller has
# its own partition, region and account).

locals {
  name      = "${var.project_name}-${var.environment}"
  functions = { schedule = "${local.name}-start-scheduled-run", outcome = "${local.name}-record-run-outcome", upload = "${local.name}-start-upload-run" }
}

output "name" {
  description = "<project>-<environment>: every name below starts with it, so \"<name>-*\" scopes the stage's rules, queues, topics, alarms, functions, pipelines and dashboard."
  value       = local.name
}

output "functions" {
  description = "The stage's functions: schedule (start-scheduled-run), outcome (record-run-outcome), upload (start-upload-run)."
  value       = local.functions
}

output "function_log_groups" {
  description = "Each function's log group, by the same keys."
  value       = { for key, function in local.functions : key => "/aws/lambda/${function}" }
}

output "rules" {
  description = "The stage's EventBridge rules (at most 64 characters: project_name is at most 32)."
  value       = { schedule = "${local.name}-batch-inference", run_ended = "${local.name}-run-ended", upload = "${local.name}-on-upload", freshness = "${local.name}-freshness" }
}

output "queues" {
  description = "The stage's queues: the rules' and functions' dead letters, run on upload's FIFO queue and its refused uploads."
  value = {
    dead_letters    = "${local.name}-batch-inference-dlq"
    uploads         = "${local.name}-batch-inference-uploads.fifo"
    refused_uploads = "${local.name}-batch-inference-refused-uploads.fifo"
  }
}

output "endpoint" {
  description = "The optional real-time endpoint; its configurations are named <endpoint_config_prefix><version>-<digest>."
  value       = "${local.name}-realtime"
}

output "endpoint_config_prefix" {
  value = "${local.name}-v"
}

output "model_prefixes" {
  description = "What the stage's model names start with: SageMaker may lower-case names in ARNs and IAM compares ARNs case-sensitively, so both forms."
  value       = distinct([for group in [var.model_package_group_name, lower(var.model_package_group_name)] : "${group}-${var.environment}-"])
}

output "execution_role" {
  description = "The stage's SageMaker execution role (infra/target-account)."
  value       = "${local.name}-sagemaker-execution"
}

output "shadow_execution_role" {
  description = "The role the stage's shadow runs execute as (infra/target-account): writes only under the output's _shadow/ prefix."
  value       = "${local.name}-shadow-execution"
}

output "candidate_model_prefixes" {
  description = "What a shadow candidate's model names start with (promotion.names.candidate_model_name: <group>-<environment>-c<version>), in both cases as model_prefixes."
  value       = [for prefix in distinct([for group in [var.model_package_group_name, lower(var.model_package_group_name)] : "${group}-${var.environment}-"]) : "${prefix}c"]
}

output "ssm_prefix" {
  description = "The SSM parameters build.py reads (infra/target-account writes them)."
  value       = "/${var.project_name}/${var.environment}"
}

output "deployments_prefix" {
  description = "The key prefix of the stage's deployment record in its artifact bucket."
  value       = "${var.project_name}/deployments/${var.environment}/"
}

output "data_capture_prefix" {
  description = "Where the optional endpoint's data capture writes in the stage's artifact bucket."
  value       = "${var.project_name}/data-capture/${var.environment}"
}

output "predictions_table" {
  description = "The stage's Glue database and table over its predictions (Athena reads names in lower case, with _ for -)."
  value       = { database = replace(lower(local.name), "-", "_"), table = "predictions" }
}
