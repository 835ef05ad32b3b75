"""The Lambda that dispatches the deploy workflow when a model version is approved."""
