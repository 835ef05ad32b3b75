"""The Lambda that starts the stage pipeline on each uploaded input object, N at a time."""
