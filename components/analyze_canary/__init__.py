"""Canary analysis step: compare canary and stable over the spec's window and decide with the spec's
criteria. See `core.analyze_canary`."""
