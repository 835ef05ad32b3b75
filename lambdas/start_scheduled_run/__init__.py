"""The Lambda that starts the stage pipeline on its schedule, one run per day's partition."""
