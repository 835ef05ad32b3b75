locals {
  # AWS managed keys (aws/sqs, aws/sns) cannot be used by EventBridge or CloudWatch alarms,
  # so without the stage's key the queues and the topic get a key of their own.
  kms_key_arn = var.kms_key_arn != null ? var.kms_key_arn : aws_kms_key.fallback[0].arn
}

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
        Condition = { ArnLike = { "kms:EncryptionContext:aws:logs:arn" = [for f in [local.functions.schedule, local.functions.outcome, local.functions.upload] : "arn:${data.aws_partition.current.partition}:logs:${var.region}:${data.aws_caller_identity.current.account_id}:log-group:/aws/lambda/${f}"] } }
      },
    ]
  })
}
