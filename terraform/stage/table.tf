# The stage's predictions as a table: the Publish step writes
# <predictions_table_url>day=YYYY-MM-DD/<execution id>-<n>.<csv|parquet>, and the table
# projects the day from that path (partition projection), so a day is queryable in Athena the
# moment it is written: no crawler, no MSCK REPAIR, no partition to add.
locals {
  table_names = module.naming.predictions_table
  table_formats = {
    csv = {
      input_format  = "org.apache.hadoop.mapred.TextInputFormat"
      output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
      serde         = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
      # pyarrow quotes every string; OpenCSVSerde strips the quotes (LazySimpleSerDe would not)
      serde_parameters = { separatorChar = ",", quoteChar = "\"", escapeChar = "\\" }
      table_parameters = { "skip.header.line.count" = "1" }
    }
    parquet = {
      input_format     = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
      output_format    = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
      serde            = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      serde_parameters = { "serialization.format" = "1" }
      table_parameters = {}
    }
  }
  table_format = local.table_formats[var.output_format]
}

resource "aws_glue_catalog_database" "predictions" {
  name        = local.table_names.database
  description = "The ${local.name} stage's batch predictions (sagemaker-batch-mlops)."
}

resource "aws_glue_catalog_table" "predictions" {
  database_name = aws_glue_catalog_database.predictions.name
  name          = local.table_names.table
  description   = "One row per scored record: the id, the model's answer, the model package version and the pipeline execution that scored it; partitioned by the day scored."
  table_type    = "EXTERNAL_TABLE"

  parameters = merge(local.table_format.table_parameters, {
    EXTERNAL                       = "TRUE"
    classification                 = var.output_format
    "projection.enabled"           = "true"
    "projection.day.type"          = "date"
    "projection.day.format"        = "yyyy-MM-dd"
    "projection.day.range"         = "2020-01-01,NOW"
    "projection.day.interval"      = "1"
    "projection.day.interval.unit" = "DAYS"
    "storage.location.template"    = "${var.predictions_table_url}day=$${day}/"
  })

  partition_keys {
    name = "day"
    type = "string"
  }

  storage_descriptor {
    location      = var.predictions_table_url
    input_format  = local.table_format.input_format
    output_format = local.table_format.output_format

    ser_de_info {
      serialization_library = local.table_format.serde
      parameters            = local.table_format.serde_parameters
    }

    dynamic "columns" {
      # build.py's list: the schema's id column, the answer's columns as the package declares
      # them, model_version and execution_id, in the order Publish writes them
      for_each = var.predictions_table_columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}
