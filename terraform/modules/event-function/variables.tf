variable "function_name" {
  description = "The function's name (its log group is /aws/lambda/<name>)."
  type        = string
}

variable "description" {
  type = string
}

variable "role_arn" {
  description = "The role the function runs as (made by the base infrastructure, not here)."
  type        = string
}

variable "package" {
  description = "The function's zip (built reproducibly by build.py)."
  type        = string
}

variable "handler" {
  type = string
}

variable "timeout" {
  description = "Seconds."
  type        = number
}

variable "environment" {
  description = "The function's environment variables."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "The key of the function's log group."
  type        = string
}

variable "log_retention_days" {
  type = number
}

variable "dead_letter_arn" {
  description = "Where an asynchronous invocation that still fails after Lambda's two retries goes (null: none, e.g. for a queue's function, whose queue redrives)."
  type        = string
  default     = null
}

variable "rule" {
  description = "The EventBridge rule that invokes the function: it may invoke it (statement_id names the grant), its target retries for an hour and sends what it cannot deliver to dead_letter_arn. Null: not invoked by a rule."
  type = object({
    name         = string
    arn          = string
    statement_id = string
  })
  default = null
}

variable "queue" {
  description = "The SQS queue the function reads, one message at a time (an object, so that its presence is known before the queue exists). Null: no queue."
  type = object({
    arn = string
  })
  default = null
}
