"""Gate step: decide whether a candidate model may be registered, from its test metrics, the spec's floors
and the current champion's metrics on the same test rows. See `core.decide`."""
