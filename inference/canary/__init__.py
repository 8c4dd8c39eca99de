"""Canary analysis: evidence about the stable and canary versions (router metrics or Prometheus, plus
prediction scores) and the promote / roll back decision against the spec's `canary.success` criteria."""
