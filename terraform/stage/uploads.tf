# S3 "Object Created" under the input prefix -> rule -> FIFO queue (the event unchanged, one
# message group) -> function (lambdas/start_upload_run) -> pipeline on exactly that object.
# The function refuses what must not run (folder markers, vanished objects, keys that other
# objects extend) into the refused-uploads queue, and holds the queue while
# upload_max_running runs are executing: a burst of uploads drains at the pipeline's pace.
# Not an EventBridge Pipe: a pipe to SageMaker cannot batch, cap concurrency or build the
# object's URI without an input transformer, which inserts the key into JSON unescaped.

locals {
  input_bucket = regex("^s3://([^/]+)/?(.*)$", var.input_data_url)[0]
  input_prefix = regex("^s3://([^/]+)/?(.*)$", var.input_data_url)[1]
  # prefixes compared and matched as folders: "p/data" and "p/data/" are the same input, and
  # neither contains "p/data-out/"
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
    # S3 sends a bucket's events to its own account's default bus only: this rule never
    # sees another account's uploads (that would need a rule forwarding them, over there)
    precondition {
      condition     = !anytrue([for i in var.external_inputs : startswith("${trimsuffix(var.input_data_url, "/")}/", i.url) && i.account_id != data.aws_caller_identity.current.account_id])
      error_message = "run_on_upload needs input_data_url's bucket in the stage's account: S3 sends another account's events to that account's EventBridge bus, not this one; set run_on_upload = false and score day partitions on the schedule."
    }
  }
  name        = module.naming.rules.upload
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
  name                              = module.naming.queues.uploads
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
  name                              = module.naming.queues.refused_uploads
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

module "upload_function" {
  source             = "../modules/event-function"
  count              = var.run_on_upload ? 1 : 0
  function_name      = local.functions.upload
  description        = "Run on upload for ${local.name}: starts the stage's pipeline on each uploaded input object, at most ${var.upload_max_running} runs at a time."
  role_arn           = var.upload_starter_role_arn
  handler            = "handler.handler"
  package            = var.upload_starter_zip
  timeout            = local.upload_timeout_seconds
  kms_key_arn        = local.kms_key_arn
  log_retention_days = 90
  environment = {
    PIPELINE_NAME       = aws_sagemaker_pipeline.batch.pipeline_name
    PIPELINE_PARAMETERS = jsonencode({ for k, v in local.pipeline_parameters : k => v if k != "InputDataUrl" })
    INPUT_BUCKET        = local.input_bucket
    INPUT_PREFIX        = "${trimsuffix(local.input_prefix, "/")}/"
    MAX_RUNNING         = tostring(var.upload_max_running)
    REFUSED_QUEUE_URL   = aws_sqs_queue.refused_uploads[0].id
    PARTITION_FORMAT    = var.partition_format                           # uploads into a day's partition: the schedule's
    KMS_KEY_ARN         = var.kms_key_arn == null ? "" : var.kms_key_arn # the objects' markers
  }
  # no dead-letter queue of its own: the upload queue's redrive policy is (refused uploads)
  queue = { arn = aws_sqs_queue.uploads[0].arn }
}
