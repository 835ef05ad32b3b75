# The shadow pipeline (issue #33, pipelines/shadow_run.py): before prod's gate, the plan job
# runs it to score the stage's last scored days with a candidate model beside the champion.
# The stage pipeline's definition (build.py uploads the same JSON with each job's RoleArn
# the shadow role's: promotion/stage_files.py shadow_definition), run as the shadow role,
# which writes only under <output>/_shadow/ and transforms only with candidate models
# (infra/target-account/shadow-role.tf). Its own name: its runs are no run of the stage's
# pipeline to the run-ended rule, the schedule, the alarms or the dashboard (their metrics'
# PipelineName dimension is the pipeline's own). None where the account has no shadow role.
resource "aws_sagemaker_pipeline" "shadow" {
  count                 = var.shadow_role_arn == null ? 0 : 1
  pipeline_name         = var.shadow_pipeline_name
  pipeline_display_name = var.shadow_pipeline_name
  pipeline_description  = "Shadow runs of ${var.pipeline_name}: a candidate model on scored days, outputs under _shadow/ only."
  role_arn              = var.shadow_role_arn

  pipeline_definition_s3_location {
    bucket     = var.artifacts_bucket
    object_key = var.shadow_pipeline_definition_s3_key
  }

  # as aws_sagemaker_pipeline.batch (hashicorp/terraform-provider-aws#38259)
  lifecycle {
    ignore_changes = [pipeline_definition]
  }
}
