"""Deploy step: serve a registered version, alone as the first champion or as a canary next to it
(`step.run`; the logic is inference/canary/deploy.py)."""
