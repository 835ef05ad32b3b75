# Plan/apply the stage template against a mock AWS provider with a stage's real inputs
# (tests/test_terraform.py passes build.py's tfvars with -var-file). The runs that assert on
# resources apply the stage module (terraform/stage) itself, whose resources a test can name;
# the runs that expect a variable's validation to fail plan the root, which validates.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "222222222222" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_sagemaker_pipeline" {
    defaults = { arn = "arn:aws:sagemaker:eu-west-1:222222222222:pipeline/mock" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:222222222222:rule/mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-1:222222222222:mock-dlq"
      id  = "https://sqs.eu-west-1.amazonaws.com/222222222222/mock-dlq"
    }
  }
  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:eu-west-1:222222222222:function:mock" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:222222222222:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:222222222222:mock-alarms" }
  }
}

run "schedule_starts_the_pipeline_with_the_promoted_model" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    instance_prices = { "ml.c5.xlarge" = 0.25 } # the stage's own price, for each run's cost
  }

  assert {
    condition     = aws_cloudwatch_event_rule.schedule.schedule_expression == var.schedule_expression
    error_message = "the rule does not use the stage's schedule"
  }
  assert {
    condition     = keys(aws_sagemaker_model.batch) == [var.model_name] && aws_sagemaker_model.batch[var.model_name].name == var.model_name
    error_message = "a first deployment must create exactly the promoted version's model"
  }
  assert {
    condition     = one(aws_sagemaker_model.batch[var.model_name].primary_container).model_package_name == var.model_package_arn
    error_message = "the model is not built from the promoted package"
  }
  assert {
    condition     = aws_sagemaker_model.batch[var.model_name].enable_network_isolation
    error_message = "network isolation must be on"
  }
  assert {
    condition     = module.schedule_function.target.arn == module.schedule_function.function.arn && module.schedule_function.permission.source_arn == aws_cloudwatch_event_rule.schedule.arn && module.schedule_function.permission.principal == "events.amazonaws.com"
    error_message = "the schedule must invoke the schedule's function, and only this rule may"
  }
  assert {
    condition = jsondecode(module.schedule_function.function.environment[0].variables.PIPELINE_PARAMETERS) == {
      ModelName               = var.model_name
      ModelVersion            = tostring(var.model_version)
      FeatureSchemaUrl        = var.feature_schema_url
      ProcessingInstanceType  = var.processing_instance_type
      ProcessingInstanceCount = tostring(var.processing_instance_count)
      TransformInstanceType   = var.transform_instance_type
      TransformInstanceCount  = tostring(var.transform_instance_count)
      MaxRejectedFraction     = tostring(var.max_rejected_fraction)
      MaxDriftScore           = tostring(var.max_drift_score)
      QualityGateMode         = var.quality_gate_mode
    }
    error_message = "the schedule's pipeline parameters are not the stage's (ModelName must be the promoted model; the day's partitions are set per run)"
  }
  assert {
    condition     = module.schedule_function.function.environment[0].variables.INPUT_DATA_URL == var.input_data_url && module.schedule_function.function.environment[0].variables.OUTPUT_DATA_URL == var.output_data_url && module.schedule_function.function.environment[0].variables.PARTITION_FORMAT == var.partition_format && module.schedule_function.function.environment[0].variables.PIPELINE_NAME == var.pipeline_name
    error_message = "the schedule's function must read and write the stage's partitions"
  }
  assert {
    condition     = module.schedule_function.function.role == var.upload_starter_role_arn && module.schedule_function.function.source_code_hash == filebase64sha256(var.schedule_starter_zip) && module.schedule_function.function.dead_letter_config[0].target_arn == aws_sqs_queue.schedule_dlq.arn
    error_message = "the schedule's function must run build.py's zip as the stage's run-starter role, failures to the schedule's dead-letter queue"
  }
  assert {
    condition     = module.outcome_function.target.arn == module.outcome_function.function.arn && module.outcome_function.permission.source_arn == aws_cloudwatch_event_rule.run_ended.arn && module.outcome_function.permission.principal == "events.amazonaws.com"
    error_message = "the run-ended rule must invoke the run-outcome function, and only it may"
  }
  assert {
    condition = jsondecode(aws_cloudwatch_event_rule.run_ended.event_pattern) == {
      source        = ["aws.sagemaker"]
      "detail-type" = ["SageMaker Model Building Pipeline Execution Status Change"]
      detail        = { pipelineArn = [aws_sagemaker_pipeline.batch.arn, aws_sagemaker_pipeline.quality.arn], currentPipelineExecutionStatus = ["Succeeded", "Failed", "Stopped", "CompletedWithFailures"] }
    }
    error_message = "the run-ended rule must match this stage's pipelines' executions (scoring, model quality) that ended, and only those"
  }
  assert {
    condition     = aws_sagemaker_pipeline.quality.pipeline_name == var.quality_pipeline_name && one(aws_sagemaker_pipeline.quality.pipeline_definition_s3_location).object_key == var.quality_pipeline_definition_s3_key && aws_sagemaker_pipeline.quality.role_arn == var.sagemaker_role_arn
    error_message = "the model-quality pipeline must run build.py's definition as the execution role"
  }
  assert {
    condition     = alltrue([for f in [module.schedule_function.function, module.outcome_function.function] : f.environment[0].variables.QUALITY_PIPELINE_NAME == var.quality_pipeline_name && f.environment[0].variables.LABELS_URL == var.labels_url && f.environment[0].variables.PREDICTIONS_TABLE_URL == var.predictions_table_url]) && module.schedule_function.function.environment[0].variables.LABEL_LOOKBACK_DAYS == "14"
    error_message = "the schedule's and run-outcome functions must know the model-quality pipeline, the labels and the predictions table"
  }
  assert {
    condition     = module.outcome_function.function.handler == "record_run_outcome.handler" && module.outcome_function.function.source_code_hash == filebase64sha256(var.schedule_starter_zip) && module.outcome_function.function.role == var.upload_starter_role_arn && module.outcome_function.function.dead_letter_config[0].target_arn == aws_sqs_queue.schedule_dlq.arn
    error_message = "the run-outcome function must run from the schedule's zip as the run-starter role, failures to the dead-letter queue"
  }
  assert {
    condition     = module.outcome_function.function.environment[0].variables.INPUT_DATA_URL == var.input_data_url && module.outcome_function.function.environment[0].variables.OUTPUT_DATA_URL == var.output_data_url && module.outcome_function.function.environment[0].variables.PARTITION_FORMAT == var.partition_format
    error_message = "the run-outcome function must find the markers where the starters write them"
  }
  assert {
    condition     = module.outcome_function.function.environment[0].variables.INSTANCE_PRICES == jsonencode(var.instance_prices) && module.schedule_function.function.environment[0].variables.INSTANCE_PRICES == jsonencode(var.instance_prices) && module.outcome_function.function.environment[0].variables.PIPELINE_NAME == var.pipeline_name
    error_message = "the functions that complete markers must price runs with the stage's instance_prices, and name the pipeline as the cost filters match it"
  }
  assert {
    condition     = aws_cloudwatch_log_metric_filter.quality["RunCost"].metric_transformation[0].value == "$.cost_usd" && aws_cloudwatch_log_metric_filter.quality["CostPer1000Rows"].metric_transformation[0].value == "$.cost_per_1000_rows" && strcontains(aws_cloudwatch_log_metric_filter.quality["RunCost"].pattern, "$.event = \"run-cost\"")
    error_message = "each run's cost must be a metric from the run-outcome function's run-cost line"
  }
  assert {
    condition     = jsondecode(aws_s3_object.deployment_record.content) == { current = { model_name = var.model_name, model_package_arn = var.model_package_arn, source_model_package_arn = var.source_model_package_arn, model_version = var.model_version, endpoint_config = null }, previous = null }
    error_message = "the deployment record must name the deployed model (build.py reads it as the next previous_model)"
  }
  assert {
    condition     = one(aws_sagemaker_pipeline.batch.pipeline_definition_s3_location).object_key == var.pipeline_definition_s3_key
    error_message = "the pipeline does not use the uploaded definition"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["failed"].dimensions.PipelineName == var.pipeline_name
    error_message = "the failed-executions alarm watches another pipeline"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["failed"].alarm_actions == toset([aws_sns_topic.alarms.arn]) && aws_cloudwatch_metric_alarm.stage["not_started"].alarm_actions == toset([aws_sns_topic.alarms.arn])
    error_message = "alarms do not notify the topic"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["not_started"].dimensions.RuleName == aws_cloudwatch_event_rule.schedule.name
    error_message = "the failed-invocations alarm watches another rule"
  }
  assert {
    condition     = aws_sns_topic.alarms.kms_master_key_id != null && aws_sqs_queue.schedule_dlq.kms_master_key_id != null
    error_message = "the topic and the dead-letter queue must be encrypted"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["dead_letters"].dimensions.QueueName == aws_sqs_queue.schedule_dlq.name && aws_cloudwatch_metric_alarm.stage["dead_letters"].alarm_actions == toset([aws_sns_topic.alarms.arn])
    error_message = "runs that could not start (dead letters) must raise an alarm"
  }
  assert {
    condition     = length(jsondecode(aws_cloudwatch_dashboard.batch.dashboard_body).widgets) == (var.run_on_upload ? 13 : 12)
    error_message = "the dashboard lost a widget"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["quality_drop"].threshold == var.max_quality_drop && aws_cloudwatch_metric_alarm.stage["quality_drop"].metric_name == "QualityDrop" && aws_cloudwatch_metric_alarm.stage["quality_drop"].dimensions.PipelineName == var.pipeline_name && strcontains(aws_cloudwatch_log_metric_filter.quality["QualityDrop"].pattern, "$.event = \"model-quality\"")
    error_message = "the model-quality alarm must watch this pipeline's QualityDrop (evaluate.py's line) at max_quality_drop"
  }
  assert {
    condition     = alltrue([for k, f in aws_cloudwatch_log_metric_filter.quality : f.log_group_name == (startswith(k, "Prediction") ? "/aws/sagemaker/TransformJobs" : k == "EmptyDays" ? module.schedule_function.log_group.name : contains(["RunCost", "CostPer1000Rows"], k) ? module.outcome_function.log_group.name : "/aws/sagemaker/ProcessingJobs") && strcontains(f.pattern, "$.pipeline = \"${var.pipeline_name}\"") && strcontains(f.pattern, "&& ${f.metric_transformation[0].value} ")])
    error_message = "the metric filters must read this pipeline's lines on the jobs' log groups (predictions: Transform), each matching its value field"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["drift"].threshold == var.max_drift_score && aws_cloudwatch_metric_alarm.stage["rejected_rows"].threshold == var.max_rejected_fraction && aws_cloudwatch_metric_alarm.stage["drift"].dimensions.PipelineName == var.pipeline_name
    error_message = "the quality alarms must hold the stage's gate limits, for this pipeline"
  }
}

run "the_fallback_key_admits_every_log_group_it_encrypts" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    kms_key_arn = null
  }
  assert {
    condition = alltrue([
      for g in concat([module.schedule_function.log_group, module.outcome_function.log_group], module.upload_function[*].log_group) :
      g.kms_key_id == aws_kms_key.fallback[0].arn && contains(flatten([for st in jsondecode(aws_kms_key.fallback[0].policy).Statement : st.Condition.ArnLike["kms:EncryptionContext:aws:logs:arn"] if try(st.Principal.Service, "") == "logs.${var.region}.amazonaws.com"]), "arn:aws:logs:${var.region}:222222222222:log-group:${g.name}")
    ])
    error_message = "CloudWatch Logs must be able to use the fallback key for every function log group encrypted with it (AWS refuses to associate the key otherwise)"
  }
}

run "the_execution_role_pulls_exactly_the_stages_images" {
  command = apply
  module {
    source = "./terraform/stage"
  }

  assert {
    condition     = aws_iam_role_policy.pull_images.role == regex("[^/]+$", var.sagemaker_role_arn)
    error_message = "the pull policy must be on the stage's execution role"
  }
  assert {
    condition = jsonencode(jsondecode(aws_iam_role_policy.pull_images.policy).Statement) == jsonencode([{
      Action   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
      Effect   = "Allow"
      Resource = var.image_repository_arns
      Sid      = "PullTheStagesImages"
    }])
    error_message = "the execution role must pull from exactly build.py's repositories, nothing else"
  }
}

run "rejects_an_image_repository_that_is_not_an_ecr_arn" {
  command = plan
  variables {
    image_repository_arns = ["arn:aws:ecr:eu-west-1:111111111111:repository/*"]
  }
  expect_failures = [var.image_repository_arns]
}

run "rejects_no_image_repository" {
  command = plan
  variables {
    image_repository_arns = []
  }
  expect_failures = [var.image_repository_arns]
}

run "rejects_an_unknown_gate_mode" {
  command = plan
  variables {
    quality_gate_mode = "block"
  }
  expect_failures = [var.quality_gate_mode]
}

run "rejects_a_rejected_fraction_over_one" {
  command = plan
  variables {
    max_rejected_fraction = 1.5
  }
  expect_failures = [var.max_rejected_fraction]
}

run "upload_trigger_scores_the_uploaded_object_with_the_promoted_model" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    run_on_upload      = true
    upload_max_running = 3
  }
  assert {
    condition = jsondecode(module.upload_function[0].function.environment[0].variables.PIPELINE_PARAMETERS) == {
      ModelName               = var.model_name
      ModelVersion            = tostring(var.model_version)
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
    error_message = "the function must start runs with the schedule's parameters (the promoted model), InputDataUrl being the object"
  }
  assert {
    condition     = module.upload_function[0].function.environment[0].variables.MAX_RUNNING == "3" && module.upload_function[0].function.environment[0].variables.INPUT_PREFIX == "${trimsuffix(regex("^s3://[^/]+/?(.*)$", var.input_data_url)[0], "/")}/"
    error_message = "the function must get the run cap and the input folder"
  }
  assert {
    condition     = module.upload_function[0].function.role == var.upload_starter_role_arn && module.upload_function[0].function.source_code_hash == filebase64sha256(var.upload_starter_zip)
    error_message = "the function must run build.py's zip with infra's role"
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.upload[0].event_pattern).detail.object.key[0].prefix == "${trimsuffix(regex("^s3://[^/]+/?(.*)$", var.input_data_url)[0], "/")}/"
    error_message = "the upload rule does not watch the input prefix"
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.upload[0].event_pattern).detail.object.size == [{ numeric = [">", 0] }]
    error_message = "empty objects (console folder markers) must not be queued"
  }
  assert {
    condition     = length(aws_cloudwatch_event_target.upload_queue[0].input_transformer) == 0 && aws_cloudwatch_event_target.upload_queue[0].input == null && one(aws_cloudwatch_event_target.upload_queue[0].sqs_target).message_group_id == "uploads"
    error_message = "the queue must get the event unchanged (no transformer), all in one message group"
  }
  assert {
    condition     = aws_sqs_queue.uploads[0].fifo_queue && aws_sqs_queue.uploads[0].content_based_deduplication && module.upload_function[0].source_mapping.batch_size == 1 && module.upload_function[0].source_mapping.event_source_arn == aws_sqs_queue.uploads[0].arn
    error_message = "one upload at a time: a FIFO queue, one group, batches of one"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.uploads[0].redrive_policy).maxReceiveCount == var.upload_max_wait_hours * 3600 / aws_sqs_queue.uploads[0].visibility_timeout_seconds && aws_sqs_queue.uploads[0].visibility_timeout_seconds >= 6 * module.upload_function[0].function.timeout
    error_message = "a held upload must wait upload_max_wait_hours before it is dead-lettered, and visibility must be 6x the function's timeout"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue.uploads[0].redrive_policy).maxReceiveCount <= 1000
    error_message = "SQS allows maxReceiveCount up to 1000"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["refused_uploads"].dimensions.QueueName == aws_sqs_queue.refused_uploads[0].name && aws_cloudwatch_metric_alarm.stage["uploads_waiting"].dimensions.QueueName == aws_sqs_queue.uploads[0].name
    error_message = "refused and long-waiting uploads must raise alarms"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["upload_not_queued"].dimensions.RuleName == aws_cloudwatch_event_rule.upload[0].name
    error_message = "uploads that cannot be queued must raise an alarm"
  }
}

run "upload_trigger_needs_the_functions_package" {
  command = plan
  variables {
    run_on_upload      = true
    upload_starter_zip = null
  }
  expect_failures = [var.upload_starter_zip]
}

run "rejects_an_instance_price_that_is_no_price" {
  command = plan
  variables {
    instance_prices = { "ml.m5.xlarge" = 0 }
  }
  expect_failures = [var.instance_prices]
}

run "rejects_an_instance_price_for_no_instance_type" {
  command = plan
  variables {
    instance_prices = { "m5.xlarge" = 0.23 }
  }
  expect_failures = [var.instance_prices]
}

run "rejects_a_negative_backfill_limit" {
  command = plan
  variables {
    max_backfill_cost_usd = -1
  }
  expect_failures = [var.max_backfill_cost_usd]
}

run "rejects_a_shadow_of_more_than_two_weeks" {
  command = plan
  variables {
    shadow_days = 15
  }
  expect_failures = [var.shadow_days]
}

run "rejects_a_shadow_flip_limit_above_one" {
  command = plan
  variables {
    shadow_max_flip_rate = 1.5
  }
  expect_failures = [var.shadow_max_flip_rate]
}

run "upload_waiting_is_bounded_by_sqs_limits" {
  command = plan
  variables {
    upload_max_wait_hours = 49
  }
  expect_failures = [var.upload_max_wait_hours]
}

run "the_previous_model_is_kept_for_runs_in_flight" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    previous_model = {
      model_name               = "churn-models-preprod-v1"
      model_package_arn        = "arn:aws:sagemaker:eu-west-1:222222222222:model-package/churn-models/1"
      source_model_package_arn = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/churn-models/1"
      model_version            = 1
    }
  }
  assert {
    condition     = toset(keys(aws_sagemaker_model.batch)) == toset([var.model_name, "churn-models-preprod-v1"])
    error_message = "the previous version's model must be kept beside the promoted one"
  }
  assert {
    condition     = one(aws_sagemaker_model.batch["churn-models-preprod-v1"].primary_container).model_package_name == var.previous_model.model_package_arn
    error_message = "the kept model must still be built from its own package"
  }
  assert {
    condition     = jsondecode(module.schedule_function.function.environment[0].variables.PIPELINE_PARAMETERS)["ModelName"] == var.model_name
    error_message = "the schedule must start runs with the promoted model, not the kept one"
  }
  assert {
    condition     = jsondecode(aws_s3_object.deployment_record.content).previous.model_name == "churn-models-preprod-v1"
    error_message = "the deployment record must name the kept model"
  }
}

run "refuses_outputs_under_the_input_prefix" {
  command = plan
  variables {
    artifacts_bucket = "stage-bucket"
    run_on_upload    = true
    input_data_url   = "s3://stage-bucket/churn/batch-inference/"
    output_data_url  = "s3://stage-bucket/churn/batch-inference/output"
  }
  expect_failures = [var.output_data_url]
}

run "refuses_outputs_under_the_input_prefix_whatever_the_slashes_even_without_upload_runs" {
  command = plan
  variables {
    artifacts_bucket = "stage-bucket"
    run_on_upload    = false
    input_data_url   = "s3://stage-bucket/churn/data/"
    output_data_url  = "s3://stage-bucket/churn/data"
  }
  expect_failures = [var.output_data_url]
}

run "refuses_outputs_under_an_input_prefix_without_slash" {
  command = plan
  variables {
    artifacts_bucket = "stage-bucket"
    run_on_upload    = true
    input_data_url   = "s3://stage-bucket/churn/data"
    output_data_url  = "s3://stage-bucket/churn/data/output"
  }
  expect_failures = [var.output_data_url]
}

run "upload_trigger_refuses_the_bucket_root" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    run_on_upload   = true
    input_data_url  = "s3://landing-bucket"
    output_data_url = "s3://stage-bucket/churn/batch-inference/output"
  }
  expect_failures = [aws_cloudwatch_event_rule.upload]
}

# inputs outside the stage's bucket (infra/target-account's external_inputs, issue #31)
run "refuses_an_input_outside_the_stage_bucket_and_its_external_inputs" {
  command = plan
  variables {
    run_on_upload   = false
    input_data_url  = "s3://data-lake/churn/scoring/"
    external_inputs = [{ url = "s3://data-lake/other-team/", account_id = "222222222222" }]
  }
  expect_failures = [var.input_data_url]
}

run "accepts_an_input_under_an_external_input_and_its_uploads_in_the_stage_account" {
  command = plan
  variables {
    run_on_upload   = true
    input_data_url  = "s3://data-lake/churn/scoring/"
    external_inputs = [{ url = "s3://data-lake/churn/", account_id = "222222222222", kms_key_arn = "arn:aws:kms:eu-west-1:222222222222:key/22222222-2222-2222-2222-222222222222" }]
  }
}

run "upload_trigger_refuses_an_input_bucket_of_another_account" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    run_on_upload   = true
    input_data_url  = "s3://data-lake/churn/scoring/"
    external_inputs = [{ url = "s3://data-lake/churn/", account_id = "333333333333" }]
  }
  expect_failures = [aws_cloudwatch_event_rule.upload]
}

run "upload_trigger_watches_the_input_folder_not_its_namesakes" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    run_on_upload   = true
    input_data_url  = "s3://stage-bucket/churn/data"
    output_data_url = "s3://stage-bucket/churn/data-out"
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.upload[0].event_pattern).detail.object.key[0].prefix == "churn/data/"
    error_message = "the rule must match uploads inside churn/data/ only, not churn/data-out/ (the outputs: a loop)"
  }
}

run "no_upload_trigger_unless_asked" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    run_on_upload = false
  }
  assert {
    condition     = length(module.upload_function) == 0 && length(aws_cloudwatch_event_rule.upload) == 0 && length(aws_sqs_queue.uploads) == 0
    error_message = "the upload trigger must be opt-in"
  }
}

run "vpc_config_follows_the_subnets" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    subnet_ids         = ["subnet-0a", "subnet-0b"]
    security_group_ids = ["sg-01"]
  }
  assert {
    condition     = one(aws_sagemaker_model.batch[var.model_name].vpc_config).subnets == toset(["subnet-0a", "subnet-0b"])
    error_message = "the model is not placed in the stage's subnets"
  }
}

run "rejects_a_bad_instance_type" {
  command = plan
  variables {
    processing_instance_type = "m5.large"
  }
  expect_failures = [var.processing_instance_type]
}

run "rejects_a_zero_instance_count" {
  command = plan
  variables {
    transform_instance_count = 0
  }
  expect_failures = [var.transform_instance_count]
}

run "rejects_a_processing_volume_larger_than_aws_allows" {
  command = plan
  variables {
    processing_volume_size_gb = 16385
  }
  expect_failures = [var.processing_volume_size_gb]
}

run "rejects_a_fractional_processing_volume" {
  command = plan
  variables {
    processing_volume_size_gb = 0.5
  }
  expect_failures = [var.processing_volume_size_gb]
}

run "rejects_more_transform_payload_in_flight_than_aws_allows" {
  command = plan
  variables {
    transform_max_concurrent = 16
    transform_max_payload_mb = 7
  }
  expect_failures = [var.transform_max_payload_mb]
}

run "rejects_more_invocation_retries_than_aws_allows" {
  command = plan
  variables {
    transform_max_retries = 4
  }
  expect_failures = [var.transform_max_retries]
}

run "rejects_a_bad_schedule" {
  command = plan
  variables {
    schedule_expression = "every day"
  }
  expect_failures = [var.schedule_expression]
}

run "rejects_a_rate_whose_unit_eventbridge_refuses" {
  command = plan
  variables {
    schedule_expression = "rate(1 days)"
  }
  expect_failures = [var.schedule_expression]
}

run "rejects_a_cron_without_a_question_mark" {
  command = plan
  variables {
    schedule_expression = "cron(0 2 * * * *)"
  }
  expect_failures = [var.schedule_expression]
}

run "accepts_eventbridges_schedules" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    schedule_expression = "cron(0 18 ? * MON-FRI *)"
  }
  assert {
    condition     = aws_cloudwatch_event_rule.schedule.schedule_expression == "cron(0 18 ? * MON-FRI *)"
    error_message = "a valid cron with '?' in day-of-month must pass"
  }
}

run "rejects_an_unknown_environment" {
  command = plan
  variables {
    environment = "staging"
  }
  expect_failures = [var.environment]
}

run "every_name_fits_for_the_longest_project_name" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    project_name  = "abcdefghij-abcdefghij-abcdefghij"
    run_on_upload = true
  }
  assert {
    condition     = alltrue([for n in [aws_cloudwatch_event_rule.schedule.name, aws_cloudwatch_event_rule.upload[0].name, module.upload_function[0].function.function_name] : length(n) <= 64])
    error_message = "EventBridge rule and Lambda function names are 64 characters at most"
  }
  assert {
    condition     = alltrue([for n in [aws_sqs_queue.schedule_dlq.name, aws_sqs_queue.uploads[0].name, aws_sqs_queue.refused_uploads[0].name] : length(n) <= 80])
    error_message = "SQS queue names are 80 characters at most"
  }
  assert {
    condition     = alltrue([for n in [aws_cloudwatch_metric_alarm.stage["failed"].alarm_name, aws_cloudwatch_metric_alarm.stage["upload_not_queued"].alarm_name, aws_cloudwatch_metric_alarm.stage["dead_letters"].alarm_name, aws_cloudwatch_dashboard.batch.dashboard_name, aws_sns_topic.alarms.name] : length(n) <= 255])
    error_message = "alarm, dashboard and topic names are 255 characters at most"
  }
}

run "endpoint_names_fit_for_the_longest_project_name" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    project_name  = "abcdefghij-abcdefghij-abcdefghij"
    model_version = 99999
    endpoint      = {}
  }
  assert {
    condition     = length(aws_sagemaker_endpoint.realtime[0].name) <= 63 && alltrue([for name in keys(aws_sagemaker_endpoint_configuration.realtime) : length(name) <= 63])
    error_message = "endpoint and endpoint configuration names are 63 characters at most"
  }
}

run "rejects_a_project_name_whose_names_would_not_fit" {
  command = plan
  variables {
    project_name = "abcdefghij-abcdefghij-abcdefghijk"
  }
  expect_failures = [var.project_name]
}

# ----------------------------------------------------------------- the optional endpoint

run "no_endpoint_unless_asked" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    endpoint = { enabled = false }
  }
  assert {
    condition     = length(aws_sagemaker_endpoint.realtime) == 0 && length(aws_sagemaker_endpoint_configuration.realtime) == 0 && length(aws_appautoscaling_target.endpoint) == 0 && length(aws_cloudwatch_metric_alarm.endpoint) == 0
    error_message = "an endpoint with enabled = false (or none) must create nothing"
  }
  assert {
    condition     = !strcontains(aws_cloudwatch_dashboard.batch.dashboard_body, "AWS/SageMaker")
    error_message = "no endpoint, no endpoint widgets"
  }
}

run "instance_endpoint_serves_the_promoted_model_and_scales" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:222222222222:key/11111111-1111-1111-1111-111111111111"
    endpoint = {
      instance_type                   = "ml.c5.large"
      min_instance_count              = 2
      max_instance_count              = 4
      target_invocations_per_instance = 50
      data_capture                    = { sampling_percentage = 20 }
      latency_p99_threshold_ms        = 250
    }
  }
  assert {
    condition = (
      one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).model_name == aws_sagemaker_model.batch[var.model_name].name
      && one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).variant_name == "AllTraffic"
      && one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).instance_type == "ml.c5.large"
      && one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).initial_instance_count == 2
      && length(one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).serverless_config) == 0
    )
    error_message = "the endpoint must serve the batch pipeline's model (the promoted version) on the stage's instances"
  }
  assert {
    condition     = one(values(aws_sagemaker_endpoint_configuration.realtime)).kms_key_arn == var.kms_key_arn && one(one(values(aws_sagemaker_endpoint_configuration.realtime)).data_capture_config).kms_key_id == var.kms_key_arn
    error_message = "the endpoint's volume and its captured data must use the stage's key"
  }
  assert {
    condition = (
      one(one(values(aws_sagemaker_endpoint_configuration.realtime)).data_capture_config).destination_s3_uri == "s3://${var.artifacts_bucket}/${var.project_name}/data-capture/${var.environment}"
      && one(one(values(aws_sagemaker_endpoint_configuration.realtime)).data_capture_config).initial_sampling_percentage == 20
      && toset([for o in one(one(values(aws_sagemaker_endpoint_configuration.realtime)).data_capture_config).capture_options : o.capture_mode]) == toset(["Input", "Output"])
    )
    error_message = "data capture must sample requests and answers into the stage bucket under the project's prefix"
  }
  assert {
    condition     = aws_sagemaker_endpoint.realtime[0].endpoint_config_name == one(values(aws_sagemaker_endpoint_configuration.realtime)).name && aws_sagemaker_endpoint.realtime[0].name == "${var.project_name}-${var.environment}-realtime"
    error_message = "the endpoint must use the stage's configuration, under the stage's name"
  }
  assert {
    condition = (
      one(one(one(aws_sagemaker_endpoint.realtime[0].deployment_config).blue_green_update_policy).traffic_routing_configuration).type == "CANARY"
      && one(one(one(one(aws_sagemaker_endpoint.realtime[0].deployment_config).blue_green_update_policy).traffic_routing_configuration).canary_size).type == "INSTANCE_COUNT"
      && one(one(one(one(aws_sagemaker_endpoint.realtime[0].deployment_config).blue_green_update_policy).traffic_routing_configuration).canary_size).value == 1
      && toset([for a in one(one(aws_sagemaker_endpoint.realtime[0].deployment_config).auto_rollback_configuration).alarms : a.alarm_name]) == toset([aws_cloudwatch_metric_alarm.endpoint["errors"].alarm_name, aws_cloudwatch_metric_alarm.endpoint["latency"].alarm_name])
    )
    error_message = "a new version must reach the endpoint blue/green through a one-instance canary, rolled back on the errors and latency alarms"
  }
  assert {
    condition = (
      aws_appautoscaling_target.endpoint[0].resource_id == "endpoint/${aws_sagemaker_endpoint.realtime[0].name}/variant/AllTraffic"
      && aws_appautoscaling_target.endpoint[0].scalable_dimension == "sagemaker:variant:DesiredInstanceCount"
      && aws_appautoscaling_target.endpoint[0].min_capacity == 2 && aws_appautoscaling_target.endpoint[0].max_capacity == 4
      && aws_appautoscaling_policy.endpoint[0].resource_id == aws_appautoscaling_target.endpoint[0].resource_id
      && one(aws_appautoscaling_policy.endpoint[0].target_tracking_scaling_policy_configuration).target_value == 50
      && one(one(aws_appautoscaling_policy.endpoint[0].target_tracking_scaling_policy_configuration).predefined_metric_specification).predefined_metric_type == "SageMakerVariantInvocationsPerInstance"
    )
    error_message = "the endpoint's variant must scale between its counts on invocations per instance"
  }
  assert {
    condition     = alltrue([for a in aws_cloudwatch_metric_alarm.endpoint : a.namespace == "AWS/SageMaker" && length(a.dimensions) == 2 && a.dimensions["EndpointName"] == aws_sagemaker_endpoint.realtime[0].name && a.dimensions["VariantName"] == "AllTraffic" && a.alarm_actions == toset([aws_sns_topic.alarms.arn])])
    error_message = "the endpoint's alarms must watch its variant and notify the stage's topic"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.endpoint["errors"].metric_name == "Invocation5XXErrors" && aws_cloudwatch_metric_alarm.endpoint["latency"].metric_name == "ModelLatency" && aws_cloudwatch_metric_alarm.endpoint["latency"].extended_statistic == "p99" && aws_cloudwatch_metric_alarm.endpoint["latency"].threshold == 250000 && !contains(keys(aws_cloudwatch_metric_alarm.endpoint), "no_invocations")
    error_message = "5XX errors and a p99 model latency over the threshold (ModelLatency is in microseconds) must alarm; no zero-invocation alarm unless asked"
  }
  assert {
    condition     = length([for w in jsondecode(aws_cloudwatch_dashboard.batch.dashboard_body).widgets : w if strcontains(w.properties.title, "Endpoint ${aws_sagemaker_endpoint.realtime[0].name}")]) == 3
    error_message = "the dashboard must show the endpoint's invocations and errors, latency and instances"
  }
  assert {
    condition     = output.endpoint_name == aws_sagemaker_endpoint.realtime[0].name
    error_message = "the endpoint's name is an output"
  }
  assert {
    condition     = startswith(one(keys(aws_sagemaker_endpoint_configuration.realtime)), "${var.project_name}-${var.environment}-v${var.model_version}-")
    error_message = "the configuration is named by the stage and version (and a digest of its settings)"
  }
}

run "the_configuration_in_service_is_kept_until_the_endpoint_serves_the_new_one" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:222222222222:key/11111111-1111-1111-1111-111111111111"
    endpoint    = { instance_type = "ml.c5.xlarge", min_instance_count = 2, max_instance_count = 4, target_invocations_per_instance = 50, data_capture = { sampling_percentage = 20 }, latency_p99_threshold_ms = 250 }
    # what the deployment record of the run before says (build.py passes it on)
    endpoint_config_in_service = {
      name = run.instance_endpoint_serves_the_promoted_model_and_scales.endpoint_config_name
      spec = {
        model_name         = var.model_name, model_package_arn = var.model_package_arn, model_version = var.model_version
        kms_key_arn        = "arn:aws:kms:eu-west-1:222222222222:key/11111111-1111-1111-1111-111111111111", instance_type = "ml.c5.large", initial_instance_count = 2, serverless = null
        capture_percentage = 20, capture_destination = "s3://${var.artifacts_bucket}/${var.project_name}/data-capture/${var.environment}", capture_kms_key_arn = "arn:aws:kms:eu-west-1:222222222222:key/11111111-1111-1111-1111-111111111111"
      }
    }
  }
  assert {
    condition = (
      length(aws_sagemaker_endpoint_configuration.realtime) == 2
      && contains(keys(aws_sagemaker_endpoint_configuration.realtime), run.instance_endpoint_serves_the_promoted_model_and_scales.endpoint_config_name)
      && aws_sagemaker_endpoint.realtime[0].endpoint_config_name == output.endpoint_config_name
      && output.endpoint_config_name != run.instance_endpoint_serves_the_promoted_model_and_scales.endpoint_config_name
    )
    error_message = "the configuration the endpoint serves stays (unchanged) beside the new one the endpoint moves to"
  }
  assert {
    condition     = one(aws_sagemaker_endpoint_configuration.realtime[run.instance_endpoint_serves_the_promoted_model_and_scales.endpoint_config_name].production_variants).instance_type == "ml.c5.large" && one(aws_sagemaker_endpoint_configuration.realtime[output.endpoint_config_name].production_variants).instance_type == "ml.c5.xlarge"
    error_message = "each configuration holds its own settings: the one in service exactly as it was created"
  }
  assert {
    condition     = jsondecode(aws_s3_object.deployment_record.content).current.endpoint_config.name == output.endpoint_config_name
    error_message = "the record names the configuration this deployment serves, for the next one to keep"
  }
}

run "a_new_setting_is_a_new_configuration" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:222222222222:key/11111111-1111-1111-1111-111111111111"
    endpoint    = { instance_type = "ml.c5.xlarge", min_instance_count = 2, max_instance_count = 4, target_invocations_per_instance = 50, data_capture = { sampling_percentage = 20 }, latency_p99_threshold_ms = 250 }
  }
  assert {
    condition     = output.endpoint_config_name != run.instance_endpoint_serves_the_promoted_model_and_scales.endpoint_config_name && startswith(output.endpoint_config_name, "${var.project_name}-${var.environment}-v${var.model_version}-")
    error_message = "another instance type must make another configuration (configurations are immutable)"
  }
}

run "an_alarm_or_scaling_setting_keeps_the_configuration" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:222222222222:key/11111111-1111-1111-1111-111111111111"
    endpoint = {
      instance_type                   = "ml.c5.large"
      min_instance_count              = 2
      max_instance_count              = 6
      target_invocations_per_instance = 80
      data_capture                    = { sampling_percentage = 20 }
      latency_p99_threshold_ms        = 500
      alarm_on_no_invocations         = true
    }
  }
  assert {
    condition     = output.endpoint_config_name == run.instance_endpoint_serves_the_promoted_model_and_scales.endpoint_config_name
    error_message = "alarms and scaling are not in the configuration: changing them must not redeploy the fleet"
  }
}

run "serverless_endpoint_has_no_scaling_key_nor_capture" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    kms_key_arn = "arn:aws:kms:eu-west-1:222222222222:key/11111111-1111-1111-1111-111111111111"
    endpoint = {
      serverless              = { memory_size_in_mb = 2048, max_concurrency = 5, without_network_isolation = true }
      alarm_on_no_invocations = true
    }
  }
  assert {
    condition = (
      one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).model_name == "${trimsuffix(var.model_name, "-v${var.model_version}")}-s${var.model_version}"
      && one(values(aws_sagemaker_model.serverless)).enable_network_isolation == false
      && length(one(values(aws_sagemaker_model.serverless)).vpc_config) == 0
      && one(one(values(aws_sagemaker_model.serverless)).primary_container).model_package_name == aws_sagemaker_model.batch[var.model_name].primary_container[0].model_package_name
      && aws_sagemaker_model.batch[var.model_name].enable_network_isolation == true
    )
    error_message = "a serverless endpoint serves the same package through a model without network isolation or VPC (AWS runs serverless models with neither); the batch model stays isolated"
  }
  assert {
    condition     = terraform_data.endpoint_kind[0].input == "serverless"
    error_message = "the endpoint's kind is what replaces it when it changes (AWS does not convert an endpoint between instances and serverless)"
  }
  assert {
    condition = (
      one(one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).serverless_config).memory_size_in_mb == 2048
      && one(one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).serverless_config).max_concurrency == 5
      && one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).instance_type == null
      && one(values(aws_sagemaker_endpoint_configuration.realtime)).kms_key_arn == null
      && length(one(values(aws_sagemaker_endpoint_configuration.realtime)).data_capture_config) == 0
    )
    error_message = "a serverless endpoint has a memory size and concurrency, no instance type, no key and no data capture (AWS supports neither)"
  }
  assert {
    condition     = length(aws_appautoscaling_target.endpoint) == 0 && length(aws_appautoscaling_policy.endpoint) == 0
    error_message = "serverless endpoints scale by themselves: no scaling resources"
  }
  assert {
    condition     = one(one(one(one(aws_sagemaker_endpoint.realtime[0].deployment_config).blue_green_update_policy).traffic_routing_configuration).canary_size).type == "CAPACITY_PERCENT"
    error_message = "a serverless endpoint's canary is a share of its capacity"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.endpoint["no_invocations"].comparison_operator == "LessThanThreshold" && aws_cloudwatch_metric_alarm.endpoint["no_invocations"].treat_missing_data == "breaching"
    error_message = "asked for, an endpoint without invocations alarms (no traffic publishes no datapoint)"
  }
}

run "one_instance_endpoint_shifts_all_at_once" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    endpoint = { min_instance_count = 1 }
  }
  assert {
    condition     = length(aws_sagemaker_model.serverless) == 0 && one(one(values(aws_sagemaker_endpoint_configuration.realtime)).production_variants).model_name == var.model_name
    error_message = "an instance-based endpoint serves the isolated batch model; no serverless model"
  }
  assert {
    condition     = one(one(one(aws_sagemaker_endpoint.realtime[0].deployment_config).blue_green_update_policy).traffic_routing_configuration).type == "ALL_AT_ONCE" && length(one(one(one(aws_sagemaker_endpoint.realtime[0].deployment_config).blue_green_update_policy).traffic_routing_configuration).canary_size) == 0
    error_message = "a canary may be at most half the new fleet: one instance shifts all at once (and is watched)"
  }
}

run "a_fixed_fleet_does_not_scale" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    endpoint = { min_instance_count = 2, max_instance_count = 2 }
  }
  assert {
    condition     = length(aws_appautoscaling_target.endpoint) == 0 && length(aws_appautoscaling_policy.endpoint) == 0 && length(aws_sagemaker_endpoint.realtime) == 1
    error_message = "min = max: a fixed fleet, no scaling resources"
  }
}

run "rejects_a_serverless_endpoint_unless_it_may_run_without_isolation" {
  command = plan
  variables {
    endpoint = { serverless = { memory_size_in_mb = 2048, max_concurrency = 5 } }
  }
  expect_failures = [var.endpoint]
}

run "rejects_data_capture_on_a_serverless_endpoint" {
  command = plan
  variables {
    endpoint = { serverless = { memory_size_in_mb = 2048, max_concurrency = 5, without_network_isolation = true }, data_capture = {} }
  }
  expect_failures = [var.endpoint]
}

run "rejects_a_serverless_memory_size_aws_does_not_offer" {
  command = plan
  variables {
    endpoint = { serverless = { memory_size_in_mb = 2000, max_concurrency = 5, without_network_isolation = true } }
  }
  expect_failures = [var.endpoint]
}

run "rejects_fewer_max_than_min_instances" {
  command = plan
  variables {
    endpoint = { min_instance_count = 3, max_instance_count = 2 }
  }
  expect_failures = [var.endpoint]
}

run "the_predictions_table_projects_each_day_from_its_path" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  # Athena's partition projection keys (Athena user guide, "Partition projection"): a date
  # column, its format, range and interval, and where each day's files are
  assert {
    condition = {
      for key, value in aws_glue_catalog_table.predictions.parameters : key => value
      if startswith(key, "projection.") || key == "storage.location.template"
      } == {
      "projection.enabled"           = "true"
      "projection.day.type"          = "date"
      "projection.day.format"        = "yyyy-MM-dd"
      "projection.day.range"         = "2020-01-01,NOW"
      "projection.day.interval"      = "1"
      "projection.day.interval.unit" = "DAYS"
      "storage.location.template"    = "${var.predictions_table_url}day=$${day}/"
    }
    error_message = "the table must project each day from the Publish step's day=YYYY-MM-DD/ folders"
  }
  assert {
    condition     = [for column in aws_glue_catalog_table.predictions.storage_descriptor[0].columns : column.name] == [for column in var.predictions_table_columns : column.name]
    error_message = "the table's columns must be the ones Publish writes, in its order"
  }
  assert {
    condition     = aws_glue_catalog_table.predictions.partition_keys[0].name == "day" && aws_glue_catalog_table.predictions.storage_descriptor[0].location == var.predictions_table_url
    error_message = "the table is partitioned by day under predictions_table_url"
  }
  assert {
    condition     = aws_glue_catalog_database.predictions.name == replace("${var.project_name}_${var.environment}", "-", "_")
    error_message = "the database is named for the stage, as Athena reads it"
  }
}

run "freshness_checks_each_day_at_its_deadline_with_the_schedules_function" {
  command = apply
  module {
    source = "./terraform/stage"
  }
  variables {
    score_by_hours = 30
  }
  assert {
    condition     = one(aws_cloudwatch_event_rule.freshness).schedule_expression == "cron(0 6 * * ? *)" && module.schedule_function.function.environment[0].variables["SCORE_BY_HOURS"] == "30"
    error_message = "the check must fire at the deadline's hour (30 h: 06:00 UTC) and know the deadline"
  }
  assert {
    condition     = one(aws_cloudwatch_event_target.freshness).arn == module.schedule_function.function.arn && one(one(aws_cloudwatch_event_target.freshness).input_transformer).input_template == "{\"check\": \"freshness\", \"event\": <aws.events.event>}" && one(aws_lambda_permission.freshness).source_arn == one(aws_cloudwatch_event_rule.freshness).arn
    error_message = "the deadline rule must invoke the schedule's function with the wrapped Scheduled Event, and may"
  }
  assert {
    condition     = toset(keys(aws_cloudwatch_log_metric_filter.freshness)) == toset(["LateInputNeverArrived", "LateRunFailed", "LateStillRunning", "LateScheduleDidNotFire", "ScheduleRuns"]) && alltrue([for f in aws_cloudwatch_log_metric_filter.freshness : f.log_group_name == module.schedule_function.log_group_name])
    error_message = "one metric per reason a day is late, and the heartbeat, from the schedule function's log"
  }
  assert {
    condition     = alltrue([for key in ["late_input_never_arrived", "late_run_failed", "late_still_running", "late_schedule_did_not_fire"] : aws_cloudwatch_metric_alarm.stage[key].treat_missing_data == "notBreaching" && aws_cloudwatch_metric_alarm.stage[key].period == 300 && aws_cloudwatch_metric_alarm.stage[key].comparison_operator == "GreaterThanThreshold"])
    error_message = "a late day's alarms go off on a late line only"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["schedule_silent"].treat_missing_data == "breaching" && aws_cloudwatch_metric_alarm.stage["schedule_silent"].comparison_operator == "LessThanThreshold" && aws_cloudwatch_metric_alarm.stage["schedule_silent"].threshold == 1 && aws_cloudwatch_metric_alarm.stage["schedule_silent"].period == 90000
    error_message = "the dead-man's switch must alarm on silence over a day and an hour (rate(1 day))"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["failed"].period == 300 && aws_cloudwatch_metric_alarm.stage["failed"].treat_missing_data == "notBreaching" && aws_cloudwatch_metric_alarm.stage["failed"].comparison_operator == "GreaterThanThreshold"
    error_message = "an alarm that sets no period, comparison or missing-data treatment keeps the defaults"
  }
}

run "the_dead_mans_switch_follows_a_minutes_rate" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    schedule_expression = "rate(5 minutes)"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["schedule_silent"].period == 600
    error_message = "rate(5 minutes): five minutes and as much slack"
  }
}

run "the_dead_mans_switch_follows_a_daily_cron" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    schedule_expression = "cron(0 2 * * ? *)"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["schedule_silent"].period == 90000
    error_message = "a cron that fires once a day: a day and an hour"
  }
}

run "the_dead_mans_switch_takes_other_crons_as_weekly" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    schedule_expression = "cron(0 18 ? * MON-FRI *)"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.stage["schedule_silent"].period == 604800
    error_message = "a cron of uneven gaps: seven days, CloudWatch's longest"
  }
}

run "no_freshness_check_unless_on" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    freshness_alarms = false
  }
  assert {
    condition     = length(aws_cloudwatch_event_rule.freshness) == 0 && length(aws_cloudwatch_log_metric_filter.freshness) == 0 && length([for key in keys(aws_cloudwatch_metric_alarm.stage) : key if startswith(key, "late_") || key == "schedule_silent" || key == "freshness_not_checked"]) == 0 && contains(keys(aws_cloudwatch_metric_alarm.stage), "failed")
    error_message = "freshness_alarms = false must leave out the check, its metrics and alarms, and nothing else"
  }
}

run "rejects_a_deadline_out_of_range" {
  command = plan
  variables {
    score_by_hours = 73
  }
  expect_failures = [var.score_by_hours]
}

run "rejects_a_fractional_deadline" {
  command = plan
  variables {
    score_by_hours = 6.5
  }
  expect_failures = [var.score_by_hours]
}

run "rejects_a_deadline_before_the_daily_run" {
  command = plan
  variables {
    schedule_expression = "cron(30 7 * * ? *)"
    score_by_hours      = 7
  }
  expect_failures = [var.score_by_hours]
}

run "the_shadow_pipeline_is_the_stage_pipeline_run_as_the_shadow_role" {
  command   = apply
  state_key = "shadow" # a state of its own: the override below reaches a created pipeline
  module {
    source = "./terraform/stage"
  }
  override_resource {
    target = aws_sagemaker_pipeline.shadow[0]
    values = { arn = "arn:aws:sagemaker:eu-west-1:222222222222:pipeline/mock-shadow" }
  }
  assert {
    condition     = length(aws_sagemaker_pipeline.shadow) == 1 && aws_sagemaker_pipeline.shadow[0].pipeline_name == var.shadow_pipeline_name && aws_sagemaker_pipeline.shadow[0].pipeline_name != var.pipeline_name
    error_message = "a stage whose account has the shadow role gets its shadow pipeline, under its own name"
  }
  assert {
    condition     = aws_sagemaker_pipeline.shadow[0].role_arn == var.shadow_role_arn && aws_sagemaker_pipeline.batch.role_arn == var.sagemaker_role_arn && var.shadow_role_arn != var.sagemaker_role_arn
    error_message = "the shadow pipeline must run as the shadow role, the stage's as the execution role"
  }
  assert {
    condition     = one(aws_sagemaker_pipeline.shadow[0].pipeline_definition_s3_location).bucket == var.artifacts_bucket && one(aws_sagemaker_pipeline.shadow[0].pipeline_definition_s3_location).object_key == var.shadow_pipeline_definition_s3_key && var.shadow_pipeline_definition_s3_key != var.pipeline_definition_s3_key
    error_message = "the shadow pipeline must run build.py's shadow definition (the stage's with the shadow role's RoleArn), not the stage's own"
  }
  assert {
    condition     = !contains(jsondecode(aws_cloudwatch_event_rule.run_ended.event_pattern).detail.pipelineArn, aws_sagemaker_pipeline.shadow[0].arn) && module.schedule_function.function.environment[0].variables.PIPELINE_NAME == var.pipeline_name
    error_message = "a shadow run is no run of the stage: the run-ended rule must not match it (no marker recorded), the schedule must start the stage's pipeline"
  }
}

run "no_shadow_pipeline_without_the_shadow_role" {
  command = plan
  module {
    source = "./terraform/stage"
  }
  variables {
    shadow_role_arn = null
  }
  assert {
    condition     = length(aws_sagemaker_pipeline.shadow) == 0 && aws_sagemaker_pipeline.batch.pipeline_name == var.pipeline_name
    error_message = "an account whose infra predates the shadow role gets no shadow pipeline, and the stage's pipeline as before"
  }
}

run "rejects_a_shadow_role_without_its_definition" {
  command = plan
  variables {
    shadow_pipeline_definition_s3_key = null
  }
  expect_failures = [var.shadow_pipeline_definition_s3_key]
}
