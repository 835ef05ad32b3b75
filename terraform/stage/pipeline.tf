locals {
  pipeline_parameters = {
    ModelName               = aws_sagemaker_model.batch[var.model_name].name
    ModelVersion            = tostring(var.model_version)
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
