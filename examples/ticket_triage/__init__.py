"""The second example: a support-ticket triage model (three priorities) with string categories,
nulls and an answer of several columns, deployed by the same template as the first with only
its own stage files, schema, handlers and baseline."""
