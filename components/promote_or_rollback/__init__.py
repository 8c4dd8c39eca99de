"""Release step: promote the canary or roll it back, as the analysis decided (`step.run`; the logic
is inference/canary/finish.py)."""
