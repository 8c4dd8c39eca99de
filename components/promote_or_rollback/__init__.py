"""Release step: promote the canary or roll it back, as the analysis decided. See `core.finish_rollout`."""
