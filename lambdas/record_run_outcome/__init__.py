"""The Lambda that completes a day's or an uploaded object's marker when its run ends."""
