"""Gate step: may a candidate be registered, from its test metrics, the spec's floors and the champion's
metrics on the same test rows (`step.run`)."""
