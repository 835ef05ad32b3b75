data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:a key policy's "*" resource is the key itself; the account root administers it
  #checkov:skip=CKV_AWS_111:a key policy's "*" resource is the key itself; services are limited by conditions
  #checkov:skip=CKV_AWS_356:a key policy's "*" resource is the key itself
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.root]
    }
  }
  statement {
    sid       = "LogsEncryptTheJobLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:/aws/sagemaker/*",
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${local.upload_log_group}",
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${local.schedule_log_group}",
        "arn:${local.partition}:logs:${var.region}:${local.account}:log-group:${local.outcome_log_group}",
      ]
    }
  }
  statement {
    sid       = "AlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
  # EventBridge's KMS calls for encrypted queues carry no aws:SourceAccount, so a condition
  # on it would silently drop the events; the queues' own policies limit who sends.
  statement {
    sid       = "EventBridgeSendsToTheEncryptedQueues"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "stage" {
  description         = "${local.name}: batch-inference artifacts, data, queues, topic and logs"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "stage" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.stage.key_id
}
