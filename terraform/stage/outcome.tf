# When a run ends (any final status), its day's or uploaded object's marker is completed at
# once (rows read, rejected, scored, or the failure): SageMaker's status change event -> rule
# -> function (lambdas/record_run_outcome, shipped in the schedule function's zip). Without
# it a day's marker is completed at the next look at the day, an upload's never.
resource "aws_cloudwatch_event_rule" "run_ended" {
  name        = module.naming.rules.run_ended
  description = "Records how each run of ${var.pipeline_name} ended in its day's or object's marker (through ${local.functions.outcome})."
  event_pattern = jsonencode({
    source        = ["aws.sagemaker"]
    "detail-type" = ["SageMaker Model Building Pipeline Execution Status Change"]
    detail = {
      pipelineArn                    = [aws_sagemaker_pipeline.batch.arn, aws_sagemaker_pipeline.quality.arn]
      currentPipelineExecutionStatus = ["Succeeded", "Failed", "Stopped", "CompletedWithFailures"]
    }
  })
}

module "outcome_function" {
  source             = "../modules/event-function"
  function_name      = local.functions.outcome
  description        = "Records how each run of ${local.name}'s pipeline ended in its day's or uploaded object's marker."
  role_arn           = var.upload_starter_role_arn # the stage's run-starter role (infra/target-account)
  handler            = "record_run_outcome.handler"
  package            = var.schedule_starter_zip # the schedule's zip carries it (lambdas/package.py)
  timeout            = 60
  kms_key_arn        = local.kms_key_arn
  log_retention_days = 365
  environment = merge(local.model_quality_environment, {
    INPUT_DATA_URL   = var.input_data_url
    OUTPUT_DATA_URL  = var.output_data_url
    PARTITION_FORMAT = var.partition_format
    KMS_KEY_ARN      = var.kms_key_arn == null ? "" : var.kms_key_arn
    # the stage's prices over the shipped table, for each run's cost (stage_runtime/run_cost.py)
    INSTANCE_PRICES = jsonencode(var.instance_prices)
    PIPELINE_NAME   = aws_sagemaker_pipeline.batch.pipeline_name # what the cost line names
  })
  dead_letter_arn = aws_sqs_queue.schedule_dlq.arn
  rule            = { name = aws_cloudwatch_event_rule.run_ended.name, arn = aws_cloudwatch_event_rule.run_ended.arn, statement_id = "TheRunEndedRuleInvokes" }
}
