# Model quality with delayed labels: a second pipeline, one Evaluate Processing step
# (pipelines/batch_inference/evaluate.py) per scored day whose labels landed under
# var.labels_url. The schedule's function starts it, exactly once per upload of a day's
# labels; the run-outcome function writes its result into the day's marker (model_quality);
# its metric line feeds local.quality_metrics and the quality_drop alarm (alarms.tf).
resource "aws_sagemaker_pipeline" "quality" {
  pipeline_name         = var.quality_pipeline_name
  pipeline_display_name = var.quality_pipeline_name
  role_arn              = var.sagemaker_role_arn

  pipeline_definition_s3_location {
    bucket     = var.artifacts_bucket
    object_key = var.quality_pipeline_definition_s3_key
  }

  # as aws_sagemaker_pipeline.batch (pipeline.tf): hashicorp/terraform-provider-aws#38259
  lifecycle {
    ignore_changes = [pipeline_definition]
  }
}

locals {
  # earlier days the schedule's function looks at for labels that landed since: a day's
  # labels are evaluated if they arrive within this many days of the day
  label_lookback_days = 14
  # what the schedule's and the run-outcome functions read to evaluate and record days
  model_quality_environment = {
    QUALITY_PIPELINE_NAME = aws_sagemaker_pipeline.quality.pipeline_name
    LABELS_URL            = var.labels_url
    PREDICTIONS_TABLE_URL = var.predictions_table_url
  }
}
